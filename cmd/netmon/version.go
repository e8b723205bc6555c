package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
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
// toolchain embeds, so there is nothing to stamp with -ldflags.
func versionString() string {
	v, rev, modified, when := "(devel)", "", false, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			case "vcs.time":
				when = s.Value
			}
		}
	}
	out := "netmon " + v
	if rev != "" {
		out += " " + rev[:min(12, len(rev))]
		if modified {
			out += "+dirty"
		}
	}
	if when != "" {
		out += " " + when
	}
	return out + fmt.Sprintf(" %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
