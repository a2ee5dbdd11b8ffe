package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildBot builds cmd/bot into dir, as a user would run it.
func buildBot(ctx context.Context, root, dir string) (string, error) {
	out := filepath.Join(dir, "bot")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/bot")
	cmd.Dir = root
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/bot: %w\n%s", err, buf.String())
	}
	return out, nil
}

// botProcess is the bot running as its own process, so its memory is
// its own.
type botProcess struct {
	cmd     *exec.Cmd
	logPath string
	ops     string // 127.0.0.1:port of /healthz, /readyz, /metrics
	done    chan error

	mu      sync.Mutex
	rssKiB  int64 // last VmRSS
	peakKiB int64 // largest VmHWM seen
	samples int
}

// freePort picks a loopback port for the bot's ops listener. (With
// PULLFIX_LISTEN_ADDR=127.0.0.1:0 the bound port is only logged at info
// level, and the benchmark runs the bot at warn.)
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startBot starts the binary with only PULLFIX_* configuration (plus the
// caller's PATH/HOME and Go runtime settings) and samples its memory.
func startBot(ctx context.Context, bin, dir string, env map[string]string) (*botProcess, error) {
	ops, err := freePort()
	if err != nil {
		return nil, err
	}
	env["PULLFIX_LISTEN_ADDR"] = ops
	b, err := startProcess(ctx, bin, []string{"run"}, filepath.Join(dir, "bot.log"), env)
	if err != nil {
		return nil, err
	}
	b.ops = ops
	return b, nil
}

// startProcess starts bin args with the benchmark's environment (no
// PULLFIX_ variables, no KUBECONFIG) plus env, its output in logPath, and
// samples its memory until it ends.
func startProcess(ctx context.Context, bin string, args []string, logPath string, env map[string]string) (*botProcess, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PULLFIX_") || k == "KUBECONFIG" {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	b := &botProcess{cmd: cmd, logPath: logPath, done: make(chan error, 1)}
	go func() {
		err := cmd.Wait()
		logf.Close()
		b.done <- err
		close(b.done)
	}()
	go b.sample(ctx)
	return b, nil
}

// sample reads VmRSS and VmHWM every 200 ms until the process ends.
func (b *botProcess) sample(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	path := fmt.Sprintf("/proc/%d/status", b.cmd.Process.Pid)
	for {
		rss, hwm, err := readStatus(path)
		if err == nil {
			b.mu.Lock()
			b.rssKiB, b.peakKiB = rss, max(b.peakKiB, hwm, rss)
			b.samples++
			b.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-b.done:
			return
		case <-t.C:
		}
	}
}

func readStatus(path string) (rss, hwm int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, sc.Err()
}

// memory returns the last and the peak resident set in MiB.
func (b *botProcess) memory() (last, peak float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return float64(b.rssKiB) / 1024, float64(b.peakKiB) / 1024
}

// exited reports the process's end, if it has ended.
func (b *botProcess) exited() (error, bool) {
	select {
	case err, ok := <-b.done:
		if !ok {
			return fmt.Errorf("bot exited"), true
		}
		if err == nil {
			err = fmt.Errorf("bot exited with status 0")
		}
		return err, true
	default:
		return nil, false
	}
}

// stop interrupts the bot and waits (SIGKILL after 10 s).
func (b *botProcess) stop() {
	_ = b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}

// get fetches a path of the ops listener.
func (b *botProcess) get(ctx context.Context, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.ops+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// metricSum adds up every sample of a metric family in Prometheus text.
func metricSum(text, family string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, family) {
			continue
		}
		rest := line[len(family):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// logTail returns the last n lines of the bot's log.
func (b *botProcess) logTail(n int) string {
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// save writes what a path of the ops listener answers (a profile) to file.
func (b *botProcess) save(ctx context.Context, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.ops+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// copyFile copies src to dst.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
