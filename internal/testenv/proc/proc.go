// Package proc supervises the child processes of the test environment (the
// control plane's etcd, kube-apiserver and kube-controller-manager; the real
// node's containerd and kubelet) so that none outlives the test that started
// it: each runs in its own process group, with SIGKILL as its parent-death
// signal on Linux, and its temporary directory records its owner so the next
// run can reap what a killed run left behind.
package proc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one child: its command line, its log file and its lifecycle.
// A Process can be started again after it stopped (the control plane
// restarts its API server that way); each start appends to the same log.
type Process struct {
	Name    string
	Path    string
	Args    []string
	LogPath string
	// Tee, when set, gets a live copy of the output, each line prefixed
	// with the process's name.
	Tee io.Writer
	// Env is the child's environment; nil means ChildEnv().
	Env []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current run has exited and been reaped
	err  error         // exit status of the current run, valid after done
}

// Start launches the process in its own process group, with SIGKILL as its
// parent-death signal, so neither a crash of the test binary nor a stuck
// grandchild leaves anything running.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running", p.Name)
		}
	}
	log, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open %s log: %w", p.Name, err)
	}
	var out io.Writer = log
	if p.Tee != nil {
		out = io.MultiWriter(log, Prefixed(p.Tee, p.Name+": "))
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childSysProcAttr()
	cmd.Env = p.Env
	if cmd.Env == nil {
		cmd.Env = ChildEnv()
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
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

// Exited is closed when the current run ends; nil if never started.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// ExitErr describes why the current run ended.
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		return fmt.Errorf("%s exited with status 0", p.Name)
	}
	return fmt.Errorf("%s exited: %w", p.Name, p.err)
}

// Pid of the current (or last) run, 0 if never started.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop sends SIGTERM to the process group, then SIGKILL after grace, and
// waits until the process is reaped. Stopping a stopped process is a no-op.
func (p *Process) Stop(grace time.Duration) error {
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
		return fmt.Errorf("SIGTERM %s: %w", p.Name, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		if err := signalGroup(pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("SIGKILL %s: %w", p.Name, err)
		}
		<-done
	}
	// The leader is gone; make sure nothing it spawned survives either.
	_ = signalGroup(pgid, syscall.SIGKILL)
	return nil
}

// Kill sends SIGKILL to the process group at once — no SIGTERM, no
// chance to clean up, as a node failure or the OOM killer would — and waits
// until it is reaped. Killing a stopped process is a no-op.
func (p *Process) Kill() error {
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
	if err := signalGroup(cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("SIGKILL %s: %w", p.Name, err)
	}
	<-done
	return nil
}

// ChildEnv passes through only what the binaries may need: no proxy
// variables in particular, so nothing is sent to a proxy from the
// environment.
func ChildEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// Prefixed prefixes each line written to w (nil stays nil), so the
// interleaved output of several processes stays readable.
func Prefixed(w io.Writer, prefix string) io.Writer {
	if w == nil {
		return nil
	}
	return &prefixWriter{prefix: prefix, w: w}
}

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

// OwnerID is this process's identity as OwnerAlive checks it later: "pid
// starttime", which survives pid reuse.
func OwnerID() (string, error) { return processID(os.Getpid()) }

// OwnerAlive reports whether the process recorded by OwnerID still runs.
func OwnerAlive(recorded string) bool {
	pid, err := strconv.Atoi(strings.Fields(recorded + " x")[0])
	if err != nil {
		return false
	}
	id, err := processID(pid)
	return err == nil && id == strings.TrimSpace(recorded)
}

// processID is "pid starttime" from /proc/<pid>/stat.
func processID(pid int) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(data)
	// Fields after "(comm)": state is field 3 of the file, starttime 22.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return fmt.Sprintf("%d %s", pid, f[19]), nil
}

// OwnerFile is the file in a temporary directory that records which
// process created it (WriteOwner), so a later run can reap directories
// whose creator died without cleaning up (panic, go test -timeout, SIGKILL).
const OwnerFile = "owner"

// orphanAge is how old a directory without an owner file must be before
// it counts as abandoned rather than being set up right now.
const orphanAge = time.Hour

// WriteOwner records the current process (pid and start time, which
// together survive pid reuse) in dir.
func WriteOwner(dir string) error {
	id, err := OwnerID()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, OwnerFile), []byte(id), 0o600)
}

// Abandoned lists the directories under root matching pattern whose owner
// is gone, or that have no owner file and are older than an hour.
func Abandoned(root, pattern string) []string {
	dirs, _ := filepath.Glob(filepath.Join(root, pattern))
	var out []string
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, OwnerFile))
		if err != nil {
			fi, serr := os.Stat(dir)
			if serr != nil || time.Since(fi.ModTime()) < orphanAge {
				continue
			}
		} else if OwnerAlive(string(data)) {
			continue
		}
		out = append(out, dir)
	}
	return out
}
