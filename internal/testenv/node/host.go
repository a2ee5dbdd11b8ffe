package node

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/proc"
)

// ErrMissing reports that something the node needs is not on this
// machine; its message names what and how to get it. Start returns it
// before starting anything.
var ErrMissing = errors.New("real node unavailable")

// hostTools are the programs Start runs, and the Debian packages that
// bring them (make node-deps installs them).
var hostTools = []struct{ bin, pkg string }{
	{"containerd", "containerd"},
	{"containerd-shim-runc-v2", "containerd"},
	{"runc", "runc"},
	{"unshare", "util-linux"},
	{"nsenter", "util-linux"},
	{"mount", "mount"},
}

// Check reports whether a node can start here and returns the kubelet's
// path: root on Linux, the host tools on PATH, and the kubelet binary
// (kubeletPath, else "kubelet" next to the control-plane binaries).
func Check(kubeletPath string) (string, error) {
	if runtime.GOOS != "linux" {
		return "", fmt.Errorf("%w: needs Linux", ErrMissing)
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%w: needs root (containerd and the kubelet manage mounts and cgroups)", ErrMissing)
	}
	var missing, pkgs []string
	for _, t := range hostTools {
		if _, err := exec.LookPath(t.bin); err != nil {
			missing = append(missing, t.bin)
			if !slices.Contains(pkgs, t.pkg) {
				pkgs = append(pkgs, t.pkg)
			}
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%w: %s not found (make node-deps, i.e. apt-get install %s)", ErrMissing, strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err != nil {
		return "", fmt.Errorf("%w: no /sys/fs/cgroup", ErrMissing)
	}
	if kubeletPath == "" {
		dir := os.Getenv(controlplane.EnvBinDir)
		if dir == "" {
			d, err := controlplane.CacheDir()
			if err != nil {
				return "", fmt.Errorf("%w: %w", ErrMissing, err)
			}
			dir = d
		}
		kubeletPath = filepath.Join(dir, "kubelet")
	}
	if fi, err := os.Stat(kubeletPath); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%w: no executable kubelet at %s (hack/build-k8s.sh builds it)", ErrMissing, kubeletPath)
	}
	return kubeletPath, nil
}

// ---- cgroups ---------------------------------------------------------------

// hierarchies are the mounted cgroup hierarchies (v1 controllers, named
// ones, the unified v2 tree).
func hierarchies() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts ... - fstype source superopts
		fields := strings.Fields(sc.Text())
		i := slices.Index(fields, "-")
		if i < 0 || i+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if fs := fields[i+1]; fs == "cgroup" || fs == "cgroup2" {
			out = append(out, fields[4])
		}
	}
	return out, sc.Err()
}

// makeCgroupRoot creates root in every hierarchy (the kubelet requires its
// cgroup root to exist), with cpuset's cpus and mems copied from the
// parent, as a v1 cpuset cgroup admits no task without them.
func makeCgroupRoot(root string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		dir := filepath.Join(h, root)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if _, err := os.Stat(filepath.Join(h, f)); err != nil {
				continue
			}
			v, err := os.ReadFile(filepath.Join(h, f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
				return fmt.Errorf("set %s of %s: %w", f, dir, err)
			}
		}
	}
	return nil
}

// cgroupPIDs lists the processes in root's subtree, in every hierarchy.
func cgroupPIDs(root string) []int {
	hs, _ := hierarchies()
	seen := map[int]bool{}
	var pids []int
	for _, h := range hs {
		_ = filepath.WalkDir(filepath.Join(h, root), func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			data, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeCgroups removes root's subtree in every hierarchy, deepest first.
func removeCgroups(root string) error {
	hs, _ := hierarchies()
	var errs []error
	for _, h := range hs {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, root), func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// ---- processes ---------------------------------------------------------------

// shimPIDs are the containerd shims serving the containerd whose socket is
// sock: they detach from containerd (and from its process group), so only
// their command line ties them to this node.
func shimPIDs(sock string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(data), "\x00")
		if len(args) > 0 && strings.Contains(filepath.Base(args[0]), "containerd-shim") && slices.Contains(args, sock) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killAll SIGKILLs pids() until it returns none or d passes.
func killAll(pids func() []int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		ps := pids()
		if len(ps) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still alive after %s: %v", d, ps)
		}
		for _, pid := range ps {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cleanup ends what a node in dir with cgroup root left: its containers
// (every process in its cgroups), its shims, containerd (stopContainerd),
// then removes the cgroups and dir. The mount namespace, and every mount
// made in it, goes with its last process.
func cleanup(dir, cgroupRoot string, stopContainerd func() error) error {
	sock := filepath.Join(dir, "containerd", "containerd.sock")
	var errs []error
	errs = append(errs, killAll(func() []int { return cgroupPIDs(cgroupRoot) }, 10*time.Second))
	errs = append(errs, killAll(func() []int { return shimPIDs(sock) }, 10*time.Second))
	errs = append(errs, stopContainerd())
	errs = append(errs, killAll(func() []int { return cgroupPIDs(cgroupRoot) }, 10*time.Second))
	// A cgroup whose last task just died can refuse rmdir for a moment.
	var err error
	for range 50 {
		if err = removeCgroups(cgroupRoot); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	errs = append(errs, err)
	if os.Getenv(EnvKeepDir) != "" {
		return errors.Join(errs...)
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

// EnvKeepDir, when set, keeps a stopped node's directory (logs, state) for
// a post-mortem; the next Start's reaping removes it.
const EnvKeepDir = "PULLFIX_NODE_KEEP_DIR"

// ---- ownership and stale runs ------------------------------------------------

const cgroupFile = "cgroup-root"

// writeOwner records the node's cgroup root and its owner (proc.WriteOwner),
// for reapStale.
func writeOwner(dir, cgroupRoot string) error {
	if err := os.WriteFile(filepath.Join(dir, cgroupFile), []byte(cgroupRoot), 0o600); err != nil {
		return err
	}
	return proc.WriteOwner(dir)
}

// reapStale cleans up after nodes whose test process died without Stop
// (panic, SIGKILL, go test -timeout): their containerd and kubelet died
// with it (parent-death signal), but shims and containers live on.
func reapStale(root string, log *slog.Logger) {
	for _, dir := range proc.Abandoned(root, tempPattern) {
		cg, _ := os.ReadFile(filepath.Join(dir, cgroupFile))
		cgroupRoot := strings.TrimSpace(string(cg))
		if cgroupRoot == "" {
			cgroupRoot = "/" + filepath.Base(dir)
		}
		if saved, err := readSysctlFile(filepath.Join(dir, "sysctls")); err == nil {
			_ = restoreSysctls(saved)
		}
		if err := cleanup(dir, cgroupRoot, func() error { return nil }); err != nil {
			log.Warn("clean up a stale node", "dir", dir, "err", err)
			continue
		}
		log.Info("cleaned up a stale node", "dir", dir)
	}
}

// ---- kernel tunables -----------------------------------------------------------

// kubeletSysctls are the tunables the kubelet sets at start
// (pkg/kubelet/cm setupKernelTunables).
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// machineSysctls returns the machine's own values of kubeletSysctls. The
// first node on a machine records them in root/pullfix-machine-sysctls
// (created exclusively, never removed); later nodes read them from there,
// so a node started while another's kubelet has just changed them does not
// take the kubelet's values for the machine's.
func machineSysctls(root string) (map[string]string, error) {
	path := filepath.Join(root, "pullfix-machine-sysctls")
	if m, err := readSysctlFile(path); err == nil && len(m) == len(kubeletSysctls) {
		return m, nil
	}
	cur, err := readSysctls()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if m, rerr := readSysctlFile(path); rerr == nil && len(m) == len(kubeletSysctls) {
			return m, nil
		}
		return cur, nil
	}
	defer f.Close()
	for _, k := range kubeletSysctls {
		fmt.Fprintf(f, "%s=%s\n", k, cur[k])
	}
	return cur, nil
}

func readSysctls() (map[string]string, error) {
	out := map[string]string{}
	for _, k := range kubeletSysctls {
		v, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			return nil, err
		}
		out[k] = strings.TrimSpace(string(v))
	}
	return out, nil
}

func restoreSysctls(saved map[string]string) error {
	var errs []error
	for k, v := range saved {
		cur, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err == nil && strings.TrimSpace(string(cur)) == v {
			continue
		}
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

func writeSysctls(path string, m map[string]string) error {
	var b strings.Builder
	for _, k := range kubeletSysctls {
		fmt.Fprintf(&b, "%s=%s\n", k, m[k])
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func readSysctlFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for l := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && slices.Contains(kubeletSysctls, k) {
			out[k] = v
		}
	}
	return out, nil
}
