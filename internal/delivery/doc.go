// Package delivery is the delivery benchmark: how soon important messages
// reach their server when a robot's link drops, for the plain retry loop
// of a sender that knows nothing of netmon and for netmon's ways of
// sending, on the same seeded schedule of drops.
//
// A run joins a robot namespace to a server namespace through a gateway
// namespace (the robot's default route goes via a gateway address on its
// veth; the server is not on-link, so the gateway's neighbour entry
// matters as it does on a robot). A [Schedule] of drops is applied by
// taking the gateway's end of the veth down and up (the robot sees carrier
// loss), by replacing the robot's address, or by moving its default route
// to another gateway. A producer makes one message every 50 ms; the
// server records the first arrival of each. The figures ([Figures]) are
// the latency beyond the physical floor (a message made while the link is
// down cannot arrive before the link returns), the connection attempts
// made while the link was down, the copies written twice, and the
// messages lost.
//
// The runner needs root (network namespaces); it is driven from this
// package's tests. TestDeliveryBrief runs a short schedule for the plain
// loop and netmon's Go pattern and checks only that every message
// arrived. The full table (every schedule, drawn from seeds 1, 2 and 3,
// the runs of each sender pooled; a few minutes) is one command:
//
//	go test ./internal/delivery -run TestDeliveryTable -delivery.full -parallel 20 -v -delivery.out delivery.md
//
// Its flags choose what to compare, e.g. before and after a change of
// netmon's policy, in the same run:
//
//	-delivery.schedules edge,out,addr,gw   the schedules (see NewSchedule)
//	-delivery.seeds 1,2,3                  the seeds; each schedule runs once per seed
//	-delivery.senders plain,daemon,netmon,netmon:drop:stabilize=200ms,python,mqtt
//	                                       the senders (see Kinds); KIND:stabilize=D sets
//	                                       netmon's --stabilize (Options.Stabilize) to D,
//	                                       netmon:drop drops connections when the Gate
//	                                       closes (options combine: the default row
//	                                       netmon:drop:stabilize=200ms is the pattern and
//	                                       the policy before issue 26)
//	-delivery.short                        the short schedules
//	-delivery.events                       log the in-process Monitor's events beside
//	                                       `ip monitor`'s account of the kernel
//	-delivery.linkwatch-batching           keep the kernel's batching of carrier changes
//	                                       (see NewNet)
//	-delivery.out FILE                     also write the Markdown table to FILE
package delivery
