//go:build unix && !linux

package proc

import "syscall"

// childSysProcAttr puts the child in its own process group. Without Linux's
// Pdeathsig, a test binary killed before Stop can leave children behind.
func childSysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// signalGroup signals the process group led by pgid.
func signalGroup(pgid int, sig syscall.Signal) error { return syscall.Kill(-pgid, sig) }
