//go:build !linux

package netmon

import "github.com/vishvananda/netns"

// netnsInode cannot identify namespaces outside Linux.
func netnsInode(netns.NsHandle) uint64 { return 0 }
