package node

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// live are the nodes started and not yet stopped in this process, for the
// interrupt handler.
var live struct {
	sync.Mutex
	nodes   map[*Node]bool
	handler sync.Once
}

// track registers n for the interrupt handler, which is installed with the
// first node: on SIGINT or SIGTERM (Ctrl-C in go test) it stops every live
// node — containers, shims, cgroups and mounts included, which the
// parent-death signal alone would leave to the next run — and then lets the
// signal end the process as it would have.
func track(n *Node) {
	live.Lock()
	defer live.Unlock()
	if live.nodes == nil {
		live.nodes = map[*Node]bool{}
	}
	live.nodes[n] = true
	live.handler.Do(func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			sig := <-c
			live.Lock()
			nodes := make([]*Node, 0, len(live.nodes))
			for n := range live.nodes {
				nodes = append(nodes, n)
			}
			live.Unlock()
			for _, n := range nodes {
				_ = n.Stop()
			}
			signal.Reset(syscall.SIGINT, syscall.SIGTERM)
			_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
		}()
	})
}

func untrack(n *Node) {
	live.Lock()
	defer live.Unlock()
	delete(live.nodes, n)
}
