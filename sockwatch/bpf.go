package sockwatch

// The BPF programs are written in C (bpf/sockwatch.c) and compiled by
// bpf2go, at the version go.mod requires, into sockwatch_bpfel.o and
// sockwatch_bpfeb.o with Go loaders; those are committed, so building needs
// no clang. .ci/run regenerates them and fails if they differ.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -target bpfel,bpfeb -no-global-types sockwatch bpf/sockwatch.c -- -I./bpf -O2 -g -Wall -Werror
