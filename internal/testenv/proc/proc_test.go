package proc

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestStopEndsTheGroup: Stop ends the child and what it forked (a
// grandchild in the background), and a stopped process can start again.
func TestStopEndsTheGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild")
	var tee bytes.Buffer
	p := &Process{Name: "sh", Path: "/bin/sh", LogPath: filepath.Join(dir, "log"), Tee: &syncBuffer{b: &tee},
		Args: []string{"-c", `sleep 600 & echo $! > "$0"; echo started; wait`, pidFile}}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err == nil {
		t.Error("a second Start of a running process succeeded")
	}
	var grandchild int
	deadline := time.Now().Add(30 * time.Second)
	for grandchild == 0 && time.Now().Before(deadline) {
		data, _ := os.ReadFile(pidFile)
		grandchild, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		time.Sleep(10 * time.Millisecond)
	}
	if grandchild == 0 {
		t.Fatal("the child never wrote its grandchild's pid")
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the process was reaped")
	}
	// The grandchild is not ours to reap: it is gone when signal 0 fails
	// or it is a zombie waiting for init.
	deadline = time.Now().Add(30 * time.Second)
	for alive(grandchild) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(grandchild) {
		t.Errorf("grandchild %d survived Stop", grandchild)
	}
	if err := p.Stop(time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	log, _ := os.ReadFile(p.LogPath)
	if !strings.Contains(string(log), "started") || !strings.Contains(tee.String(), "sh: started\n") {
		t.Errorf("log %q, tee %q", log, tee.String())
	}
	// Restart appends to the same log.
	p.Args = []string{"-c", "echo again"}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	if log, _ := os.ReadFile(p.LogPath); !strings.Contains(string(log), "started\n") || !strings.HasSuffix(string(log), "again\n") {
		t.Errorf("log after restart %q", log)
	}
	if err := p.ExitErr(); err == nil || !strings.Contains(err.Error(), "status 0") {
		t.Errorf("ExitErr = %v", err)
	}
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

func TestOwner(t *testing.T) {
	id, err := OwnerID()
	if err != nil {
		t.Fatal(err)
	}
	if !OwnerAlive(id) {
		t.Errorf("OwnerAlive(%q) = false for this process", id)
	}
	pid, _ := strconv.Atoi(strings.Fields(id)[0])
	for _, rec := range []string{"", "x", strconv.Itoa(pid) + " 1", "999999999 1"} {
		if OwnerAlive(rec) {
			t.Errorf("OwnerAlive(%q) = true", rec)
		}
	}
}

func TestPrefixed(t *testing.T) {
	var b bytes.Buffer
	w := Prefixed(&b, "etcd: ")
	for _, s := range []string{"one\ntw", "o\n", "three\n"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := b.String(), "etcd: one\netcd: two\netcd: three\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if Prefixed(nil, "x") != nil {
		t.Error("Prefixed(nil) is not nil")
	}
}

// syncBuffer is a bytes.Buffer safe for the child's writer goroutine and
// the test.
type syncBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// TestAbandoned: a directory whose owner is gone is abandoned; one owned by
// this process, or ownerless but fresh (being set up), is not.
func TestAbandoned(t *testing.T) {
	root := t.TempDir()
	mk := func(name string) string {
		dir := filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dead, mine, fresh := mk("x-dead"), mk("x-mine"), mk("x-fresh")
	mk("y-other")
	if err := os.WriteFile(filepath.Join(dead, OwnerFile), []byte("999999999 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteOwner(mine); err != nil {
		t.Fatal(err)
	}
	_ = fresh
	if got := Abandoned(root, "x-*"); len(got) != 1 || got[0] != dead {
		t.Errorf("Abandoned = %v, want only %s", got, dead)
	}
}
