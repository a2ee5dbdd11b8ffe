//go:build linux

package proc

import "syscall"

// childSysProcAttr puts the child in its own process group (so Stop can
// signal everything it spawned) and has the kernel SIGKILL it if the
// thread that started it dies — i.e. when the test binary exits without
// running Stop (panic, os.Exit, go test -timeout).
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup signals the process group led by pgid.
func signalGroup(pgid int, sig syscall.Signal) error { return syscall.Kill(-pgid, sig) }
