// Package nsthread runs a function on an OS thread inside another network
// namespace (Linux only): for work that follows the calling thread's
// namespace, such as creating a socket (it belongs to its creator's
// namespace for its whole life) or reading /proc/thread-self/net.
package nsthread
