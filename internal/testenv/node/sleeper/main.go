// Command sleeper is the one program in the real test node's images: the
// pod sandbox ("pause") and the runbook's application image both run it.
// It does what a pause container does — nothing, until told to stop — so a
// pod reaches Running and Ready, and it exits at once on SIGTERM or SIGINT
// so pod deletion does not wait for the grace period. It is built static
// (CGO_ENABLED=0) because the images have no libc.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
