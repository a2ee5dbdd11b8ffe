package chart

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDockerfileBuild builds pullfix exactly as the Dockerfile's builder
// stage does — the RUN line is read from the Dockerfile and run as written,
// with only its -o path moved to a temporary directory, since no Docker
// engine runs here — and checks what the image would hold: a static binary
// (no ELF interpreter, no shared libraries, so it runs on distroless
// static), stripped and built with -trimpath, whose `version` prints the
// version passed as the VERSION build argument; that the final stage copies
// that binary, runs it non-root and has no shell to fall back on; and that
// the Helm chart runs the pod as the Dockerfile's USER.
func TestDockerfileBuild(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages, err := ParseDockerfile(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	final := stages[len(stages)-1]

	// The final stage: distroless static, non-root, the binary from the builder.
	if final.Image != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final image %q, want gcr.io/distroless/static-debian12:nonroot (static, non-root, no shell)", final.Image)
	}
	copies := final.Find("COPY")
	if len(copies) != 1 {
		t.Fatalf("final stage has %d COPY instructions, want the binary only", len(copies))
	}
	cf := strings.Fields(copies[0].Args)
	if len(cf) != 3 || !strings.HasPrefix(cf[0], "--from=") {
		t.Fatalf("final COPY %q, want COPY --from=STAGE SRC DST", copies[0].Args)
	}
	fromStage, binSrc, binDst := strings.TrimPrefix(cf[0], "--from="), cf[1], cf[2]
	if len(final.Find("RUN")) > 0 {
		t.Error("the final stage RUNs a command: distroless has no shell")
	}
	users := final.Find("USER")
	if len(users) != 1 {
		t.Fatalf("final stage sets USER %d times, want once", len(users))
	}
	uid, gid := parseUser(t, users[0].Args)
	if uid == 0 || gid == 0 {
		t.Errorf("USER %s runs as root", users[0].Args)
	}
	entry := execForm(t, final, "ENTRYPOINT")
	if len(entry) != 1 || entry[0] != binDst {
		t.Errorf("ENTRYPOINT %q, want [%q] (exec form: there is no shell)", entry, binDst)
	}
	cmd := execForm(t, final, "CMD")
	if len(cmd) != 1 || cmd[0] != "run" {
		t.Errorf("CMD %q, want [run]", cmd)
	}

	// The builder: its Go matches go.mod, and its one go build makes binSrc.
	var builder *Stage
	for i := range stages {
		if stages[i].Name == fromStage {
			builder = &stages[i]
		}
	}
	if builder == nil {
		t.Fatalf("no stage named %q to COPY from", fromStage)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goVer == nil || builder.Image != "golang:"+string(goVer[1]) {
		t.Errorf("builder image %q does not match go.mod's go %s", builder.Image, goVer[1])
	}
	var build *Instruction
	for _, in := range builder.Find("RUN") {
		if strings.Contains(in.Args, "go build") {
			if build != nil {
				t.Fatal("the builder stage runs go build twice")
			}
			build = &in
		}
	}
	if build == nil {
		t.Fatal("the builder stage has no RUN … go build")
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/bot"} {
		if !strings.Contains(build.Args, want) {
			t.Errorf("Dockerfile line %d lacks %s: %s", build.Line, want, build.Args)
		}
	}
	var hasVersionArg bool
	for _, a := range builder.Find("ARG") {
		hasVersionArg = hasVersionArg || strings.HasPrefix(a.Args, "VERSION")
	}
	if !hasVersionArg || !strings.Contains(build.Args, "main.version=${VERSION}") {
		t.Errorf("the build does not stamp main.version from an ARG VERSION: %s", build.Args)
	}

	// Run that line, with -o moved into a temporary directory. WORKDIR /src
	// holds the build context (COPY . .), which is the repository root; the
	// context has no .git (.dockerignore), hence -buildvcs=false.
	out := filepath.Join(t.TempDir(), "bot")
	command, n := replaceOutput(build.Args, binSrc, out)
	if n != 1 {
		t.Fatalf("the build command names its output %s %d times, want once after -o: %s", binSrc, n, build.Args)
	}
	const version = "v0.0.0-dockerfile-test"
	began := time.Now()
	sh := exec.CommandContext(t.Context(), "sh", "-c", command)
	sh.Dir = root
	sh.Env = append(os.Environ(), "VERSION="+version, "GOFLAGS=-buildvcs=false")
	if b, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", command, err, b)
	}
	t.Logf("built with the Dockerfile's command in %s", time.Since(began).Round(time.Millisecond))

	checkStatic(t, out, root)
	v, err := exec.CommandContext(t.Context(), out, "version").Output()
	if err != nil {
		t.Fatalf("bot version: %v", err)
	}
	if got := strings.TrimSpace(string(v)); got != "pullfix "+version {
		t.Errorf("bot version printed %q, want %q", got, "pullfix "+version)
	}

	// The chart runs the pod as the image's user.
	h := RequireHelm(t, "pullfix")
	objs, err := h.Render(t.Context(), "docker", "pullfix-system", nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Find(objs, "Deployment")[0]
	for _, path := range [][]string{
		{"spec", "template", "spec", "securityContext"},
		{"spec", "template", "spec", "containers", "0", "securityContext"},
	} {
		sc := nested(d.Object, path)
		if got, want := toJSON(t, []any{sc["runAsUser"], sc["runAsGroup"]}), toJSON(t, []int64{uid, gid}); got != want {
			t.Errorf("%s runAsUser/runAsGroup %s, want the Dockerfile's USER %s", strings.Join(path, "."), got, want)
		}
	}
	if args := nested(d.Object, []string{"spec", "template", "spec", "containers", "0"})["args"]; toJSON(t, args) != toJSON(t, cmd) {
		t.Errorf("chart container args %v, Dockerfile CMD %v", args, cmd)
	}
}

// checkStatic fails unless the file is a static ELF executable, stripped of
// symbols and DWARF (-s -w), with no build path in it (-trimpath).
func checkStatic(t *testing.T, path, repoRoot string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an ELF interpreter (PT_INTERP): it is dynamically linked and will not start on distroless static")
		}
	}
	if libs, err := f.DynString(elf.DT_NEEDED); err == nil && len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("the binary has section %s: not built with -s -w", s.Name)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(repoRoot+"/")) {
		t.Errorf("the binary contains the build path %s: not built with -trimpath", repoRoot)
	}
}

// replaceOutput replaces the argument of -o in a shell command line, when it
// is src, with dst (single-quoted for sh); nothing else in the line changes.
// It returns the new line and how many it replaced.
func replaceOutput(command, src, dst string) (string, int) {
	re := regexp.MustCompile(`(^|\s)(-o\s+)` + regexp.QuoteMeta(src) + `(\s|$)`)
	n := len(re.FindAllStringIndex(command, -1))
	quoted := "'" + strings.ReplaceAll(dst, "'", `'\''`) + "'"
	return re.ReplaceAllString(command, "${1}${2}"+strings.ReplaceAll(quoted, "$", "$$")+"${3}"), n
}

func parseUser(t *testing.T, s string) (uid, gid int64) {
	t.Helper()
	u, g, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		t.Fatalf("USER %q: give uid:gid numerically (Kubernetes' runAsNonRoot cannot verify a name)", s)
	}
	var err1, err2 error
	uid, err1 = strconv.ParseInt(u, 10, 64)
	gid, err2 = strconv.ParseInt(g, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("USER %q is not numeric uid:gid", s)
	}
	return uid, gid
}

func execForm(t *testing.T, s Stage, cmd string) []string {
	t.Helper()
	ins := s.Find(cmd)
	if len(ins) != 1 {
		t.Fatalf("final stage has %d %s instructions, want 1", len(ins), cmd)
	}
	var v []string
	if err := json.Unmarshal([]byte(ins[0].Args), &v); err != nil {
		t.Fatalf("%s %s is not the exec (JSON) form: the image has no shell to run the shell form", cmd, ins[0].Args)
	}
	return v
}

// nested walks maps and, for numeric elements, slices.
func nested(obj map[string]any, path []string) map[string]any {
	var cur any = obj
	for _, p := range path {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	m, _ := cur.(map[string]any)
	return m
}

func TestParseDockerfile(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Stage
		wantErr  bool
	}{
		{name: "continuations and comments", in: "# syntax=docker/dockerfile:1\nARG X=1\nFROM golang:1 AS b\n# c\nRUN a \\\n  # inside\n  b\nFROM scratch\nUSER 1:1\n",
			want: []Stage{
				{Image: "golang:1", Name: "b", Instructions: []Instruction{{Line: 5, Cmd: "RUN", Args: "a b"}}},
				{Image: "scratch", Instructions: []Instruction{{Line: 9, Cmd: "USER", Args: "1:1"}}},
			}},
		{name: "platform flag", in: "FROM --platform=$BUILDPLATFORM golang:1 as b\n", want: []Stage{{Image: "golang:1", Name: "b"}}},
		{name: "no FROM", in: "RUN x\n", wantErr: true},
		{name: "dangling continuation", in: "FROM a\nRUN x \\\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDockerfile(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if toJSON(t, got) != toJSON(t, tc.want) {
				t.Errorf("got %s\nwant %s", toJSON(t, got), toJSON(t, tc.want))
			}
		})
	}
}
