package controlplane

import (
	"fmt"
	"github.com/pullfix/pullfix/internal/testenv/proc"
	"io"
	"os"
)

// WriteLogTails writes the last n lines of each process's log to w. Run
// calls it when tests fail; call it yourself to see why a test misbehaved.
func (cp *ControlPlane) WriteLogTails(w io.Writer, n int) {
	for _, p := range cp.processes() {
		writeTail(w, p, n)
	}
}

func writeTail(w io.Writer, p *proc.Process, n int) {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		fmt.Fprintf(w, "--- %s: no log (%v)\n", p.Name, err)
		return
	}
	fmt.Fprintf(w, "--- last %d lines of %s (%s)\n", n, p.Name, p.LogPath)
	w.Write(tail(data, n))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		fmt.Fprintln(w)
	}
}

// tail returns the last n lines of data.
func tail(data []byte, n int) []byte {
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	i := end
	for lines := 0; i > 0; i-- {
		if data[i-1] == '\n' {
			lines++
			if lines == n {
				break
			}
		}
	}
	return data[i:]
}
