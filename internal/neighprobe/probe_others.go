//go:build !linux

package neighprobe

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

type prober struct{}

func open(netns.NsHandle) (*prober, error) {
	return nil, fmt.Errorf("%w: not implemented on %s/%s", ErrUnavailable, runtime.GOOS, runtime.GOARCH)
}

func (*prober) probe(Request) error { return ErrUnavailable }
func (*prober) close() error        { return nil }
