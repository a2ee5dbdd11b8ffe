package diagnose

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports fences the package: diagnose stays pure so that the watcher
// and the Slack app can share it and `bot explain` runs without a cluster
// (design §2). Only the standard library and the registry libraries are
// allowed.
func TestImports(t *testing.T) {
	allowed := []string{
		"github.com/google/go-containerregistry/",
		"github.com/distribution/reference",
		"github.com/opencontainers/go-digest",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if isStdlib(path) {
				continue
			}
			ok := false
			for _, a := range allowed {
				if path == strings.TrimSuffix(a, "/") || strings.HasPrefix(path, a) {
					ok = true
				}
			}
			if !ok || strings.HasPrefix(path, "k8s.io/") || strings.HasPrefix(path, "github.com/slack-go/") {
				t.Errorf("%s imports %s: diagnose may use only the standard library, go-containerregistry, distribution/reference and go-digest", name, path)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}

// isStdlib reports whether an import path belongs to the standard library:
// its first element has no dot.
func isStdlib(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}
