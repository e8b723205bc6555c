package classify

import (
	"io/fs"
	"testing"

	"golang.org/x/sys/unix"
)

var sink Class

// BenchmarkClassify measures the two shapes the issue names: the
// three-deep chain net.Dial returns, and a non-network error that must be
// walked to its end to be ruled out.
func BenchmarkClassify(b *testing.B) {
	cases := []struct {
		name string
		err  error
	}{
		{"opError3deep", opErr("dial", "connect", unix.ENETUNREACH)},
		{"nonNetwork", &fs.PathError{Op: "open", Path: "/etc/robot.yaml", Err: unix.ENOENT}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = Classify(c.err)
			}
		})
	}
}
