package controlplane

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// process is one control-plane child: its command line, its log file and
// its lifecycle. A process can be started again after it stopped (that is
// how RestartAPIServer works); each start appends to the same log.
type process struct {
	name    string
	path    string
	args    []string
	logPath string
	tee     io.Writer // optional live copy of the output

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current run has exited and been reaped
	err  error         // exit status of the current run, valid after done
	log  *os.File
}

// start launches the process in its own process group, with SIGKILL as its
// parent-death signal, so neither a crash of the test binary nor a stuck
// grandchild leaves anything running.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running", p.name)
		}
	}
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open %s log: %w", p.name, err)
	}
	var out io.Writer = log
	if p.tee != nil {
		out = io.MultiWriter(log, &prefixWriter{prefix: p.name + ": ", w: p.tee})
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = childSysProcAttr()
	// Children read no stdin and get a minimal, predictable environment
	// plus what is needed to find a home and temp dir.
	cmd.Env = childEnv()
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err, p.log = cmd, done, nil, log
	go func() {
		err := cmd.Wait()
		log.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// exited is closed when the current run ends; nil if never started.
func (p *process) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// exitErr describes why the current run ended.
func (p *process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		return fmt.Errorf("%s exited with status 0", p.name)
	}
	return fmt.Errorf("%s exited: %w", p.name, p.err)
}

// pid of the current (or last) run, 0 if never started.
func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// stop sends SIGTERM to the process group, then SIGKILL after grace, and
// waits until the process is reaped. Stopping a stopped process is a no-op.
func (p *process) stop(grace time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	pgid := cmd.Process.Pid
	if err := signalGroup(pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("SIGTERM %s: %w", p.name, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		if err := signalGroup(pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("SIGKILL %s: %w", p.name, err)
		}
		<-done
	}
	// The leader is gone; make sure nothing it spawned survives either.
	_ = signalGroup(pgid, syscall.SIGKILL)
	return nil
}

// childEnv passes through only what the binaries may need.
func childEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// prefixWriter prefixes each line written to w, so interleaved output of
// three processes stays readable.
type prefixWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
	midLn  bool
}

func (pw *prefixWriter) Write(b []byte) (int, error) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	var buf []byte
	for _, c := range b {
		if !pw.midLn {
			buf = append(buf, pw.prefix...)
			pw.midLn = true
		}
		buf = append(buf, c)
		if c == '\n' {
			pw.midLn = false
		}
	}
	if _, err := pw.w.Write(buf); err != nil {
		return 0, err
	}
	return len(b), nil
}
