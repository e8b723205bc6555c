package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sync"
)

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: netmon version\n\nPrints the module version, VCS revision and Go version of this build.")
	}
	if code := parse(fs, args); code >= 0 {
		return code
	}
	fmt.Fprintln(stdout, versionString())
	return exitOK
}

// versionString reads the version from the build information the Go
// toolchain embeds, so there is nothing to stamp with -ldflags: the
// version and revision (buildVersion), the commit's time, the Go version
// and the platform.
func versionString() string {
	out := "netmon " + buildVersion()
	if when := buildSetting("vcs.time"); when != "" {
		out += " " + when
	}
	return out + fmt.Sprintf(" %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// buildVersion is the module version and VCS revision of this build (also
// netmon_build_info's version, read at every scrape, hence computed once):
// "v1.2.3", or "(devel)", then the first 12 digits of the revision and
// "+dirty" when the tree was modified.
var buildVersion = sync.OnceValue(func() string {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	if rev := buildSetting("vcs.revision"); rev != "" {
		v += " " + rev[:min(12, len(rev))]
		if buildSetting("vcs.modified") == "true" {
			v += "+dirty"
		}
	}
	return v
})

// buildSetting returns one setting of the build information, "" if absent.
func buildSetting(key string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == key {
				return s.Value
			}
		}
	}
	return ""
}
