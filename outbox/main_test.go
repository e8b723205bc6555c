package outbox

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// openChildEnv names the directory the test binary, run as a child,
// opens an outbox in and closes again (TestOpenSyncsTheDirectoriesItCreates).
const openChildEnv = "OUTBOX_TEST_OPEN_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(openChildEnv); dir != "" {
		o, err := Open(dir, Config{})
		if err == nil {
			err = o.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
