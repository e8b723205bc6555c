//go:build !linux

package netmon

import "github.com/vishvananda/netns"

// netnsInode cannot identify namespaces outside Linux.
func netnsInode(netns.NsHandle) uint64 { return 0 }

// inNetNS runs fn: other systems have no network namespaces to enter.
func inNetNS(_ netns.NsHandle, fn func() error) error { return fn() }
