package netmon

import "github.com/seed-a56be422/netmon/gate"

// The Monitor hands senders the Gate's sender view, which has no Open,
// Close or Shutdown (issue 16: a sender that shut the Gate down in its own
// cleanup held every other sender for good). gate's
// TestSenderCannotOpenCloseOrShutDown proves that calling them through it
// does not compile; these lines pin the Monitor to handing out that view.
var (
	_ func() *gate.Sender       = (*Monitor)(nil).Gate
	_ func(string) *gate.Sender = (*Monitor)(nil).GateFor
)
