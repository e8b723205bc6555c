// Package netnstest creates throw-away network namespaces and veth pairs for
// tests that drive the real kernel. It exists only on Linux.
//
// Every namespace is named (so iproute2 can act as an oracle with `ip -n
// NAME` and helper programs can run inside it with `ip netns exec NAME`),
// the name is unique across processes (tests in several packages run at
// once), and every namespace, link and process a helper creates is removed
// through t.Cleanup, also when the test fails.
//
// Code runs inside a namespace in one of two ways: through a netlink handle
// bound to it (NS.NetlinkHandle), which never touches the calling thread, or
// with NS.Do, which runs a function on a fresh, locked OS thread switched
// into the namespace. If that thread cannot be switched back, it stays
// locked so that the Go runtime discards it rather than reuse a thread in
// the wrong namespace.
//
// Privileged tests call RequirePrivileged first: without root it skips with
// a stated reason, and with NETMON_REQUIRE_PRIVILEGED=1 (set by CI) the skip
// becomes a failure so that CI cannot pass by testing nothing.
package netnstest
