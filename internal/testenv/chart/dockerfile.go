package chart

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Instruction is one Dockerfile instruction, continuation lines joined.
type Instruction struct {
	Line int    // 1-based line where it starts
	Cmd  string // upper case: FROM, RUN, COPY, …
	Args string // the rest, as written (continuations joined by a space)
}

// Stage is one FROM and the instructions after it.
type Stage struct {
	Image        string // the FROM image
	Name         string // the AS name, or ""
	Instructions []Instruction
}

// Find returns the stage's instructions of cmd, in order.
func (s Stage) Find(cmd string) []Instruction {
	var out []Instruction
	for _, in := range s.Instructions {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// ParseDockerfile reads a Dockerfile into its stages. It understands what
// pullfix's Dockerfile uses — comments, parser directives, backslash
// continuations, `FROM image [AS name]` — which is enough to test that file
// without a Docker engine; it is not a general BuildKit parser (no heredocs,
// no escape directive).
func ParseDockerfile(r io.Reader) ([]Stage, error) {
	var stages []Stage
	sc := bufio.NewScanner(r)
	var cur strings.Builder
	start, n := 0, 0
	flush := func() error {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := Instruction{Line: start, Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)}
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			var s Stage
			for len(f) > 0 && strings.HasPrefix(f[0], "--") { // --platform=…
				f = f[1:]
			}
			switch {
			case len(f) == 1:
				s.Image = f[0]
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				s.Image, s.Name = f[0], f[2]
			default:
				return fmt.Errorf("line %d: cannot read FROM %s", start, in.Args)
			}
			stages = append(stages, s)
			return nil
		}
		if len(stages) == 0 {
			if in.Cmd == "ARG" { // an ARG before the first FROM
				return nil
			}
			return fmt.Errorf("line %d: %s before any FROM", start, in.Cmd)
		}
		last := &stages[len(stages)-1]
		last.Instructions = append(last.Instructions, in)
		return nil
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") { // comments and directives; inside a continuation too
			continue
		}
		if cur.Len() == 0 {
			if trimmed == "" {
				continue
			}
			start = n
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSpace(strings.TrimSuffix(trimmed, `\`)))
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(trimmed)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("line %d: the file ends inside a continuation", start)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return stages, nil
}
