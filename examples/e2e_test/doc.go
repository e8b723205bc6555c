// Package e2e proves, with the real kernel, that examples/sender loses no
// message while the network between it and examples/ackserver fails in
// the ways a robot on Wi-Fi sees: the peer's link goes down, the sender's
// address is replaced by one in another subnet (a roam), the default
// route disappears, and the server resets every connection.
//
// The test builds both programs, runs them in two network namespaces
// joined by a veth pair, and needs root and iproute2. It takes about a
// minute and a half; -short runs a smaller plan (2,000 messages, four
// outages, one of each kind).
package e2e
