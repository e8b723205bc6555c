package outbox

// Power loss and a full disk, on real file systems: ext4 on a loop
// device, and a small tmpfs.
//
// The kernel here has no device mapper (no dm-flakey, no dm-log-writes:
// /dev/mapper/control cannot be opened), so the power cut is made with a
// loop device: the outbox's file system is ext4 on /dev/loopN backed by
// a file. What the loop device has received is what the disk holds; the
// file system's dirty pages in the page cache have not reached it. A
// "power cut" SIGKILLs the writer and copies the backing file at once:
// the copy is the disk as a power loss at that moment would leave it,
// without the writes that were never synced (ext4 writes a file's dirty
// pages back after 30 s, or on fsync). Mounting the copy replays ext4's
// journal, as a reboot does, and the outbox is opened there.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// requireRoot skips t (or fails it under NETMON_REQUIRE_PRIVILEGED=1)
// unless it runs as root, which loop devices and mounts need.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		netnstest.Skip(t, "needs root to attach loop devices and mount file systems (run the tests as root)")
	}
}

// sh runs a command, logged as "$ name args", and fails t on error.
func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	t.Logf("$ %s %s", name, strings.Join(args, " "))
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// mountImage attaches the file img to a loop device, mounts it (making
// an ext4 file system on it first if mkfs) and returns the mount point;
// cleanup unmounts and detaches it.
func mountImage(t *testing.T, img string, mkfs bool) string {
	t.Helper()
	dev := sh(t, "losetup", "--find", "--show", img)
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	if mkfs {
		sh(t, "mkfs.ext4", "-q", dev)
	}
	mnt := t.TempDir()
	sh(t, "mount", dev, mnt)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPowerLossLosesNothingAcceptedWithFsyncPerAppend(t *testing.T) {
	powerLoss(t, 0)
}

func TestPowerLossLosesAtMostTheLastWindowWithGroupCommit(t *testing.T) {
	powerLoss(t, 10*time.Millisecond)
}

// powerLoss cuts the power under the crash-loop child 10 times, with
// the outbox's SyncInterval sync, and checks each cut's disk.
func powerLoss(t *testing.T, sync time.Duration) {
	if testing.Short() {
		t.Skip("-short: the power-loss test mounts file systems")
	}
	requireRoot(t)
	netnstest.RequireCommand(t, "losetup", "mount")
	netnstest.RequireCommand(t, "mkfs.ext4", "e2fsprogs")
	t.Parallel()
	bin := buildChild(t)
	work := t.TempDir()
	img := filepath.Join(work, "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	live := mountImage(t, img, true)
	dir := filepath.Join(live, "outbox")
	r := newReceiver(t)
	var (
		epoch uint64
		all   = map[uint64]string{} // accepted in every round so far
		// mustHave are the messages found after an earlier cut: no
		// later one may lose them.
		mustHave []uint64
	)
	for round := range 10 {
		accepted := map[uint64]string{}
		// Kill after 20 to 219 accepted messages: with group commit,
		// paced to span several commits.
		runChild(t, bin, dir, r.ln.Addr().String(), 20+rand.IntN(200), &epoch, accepted, "-sync", sync.String(), "-pace", (sync / 20).String())
		// The cut: the disk is what the loop device has received.
		snap := filepath.Join(work, fmt.Sprintf("cut%d.img", round))
		copyFile(t, img, snap)
		maps.Copy(all, accepted)

		kept, missing := checkCut(t, snap, all, r)
		for _, n := range mustHave {
			if _, ok := slices.BinarySearch(kept, n); !ok {
				t.Errorf("cut %d: message %d, found after an earlier cut, is lost", round, n)
			}
		}
		var lost []uint64 // accepted this round and lost
		for _, n := range missing {
			if _, ok := accepted[n]; ok {
				lost = append(lost, n)
			}
		}
		t.Logf("cut %d (SyncInterval %v): %d accepted this round, %d of them lost", round, sync, len(accepted), len(lost))
		if sync > 0 && len(lost) == len(accepted) {
			t.Logf("cut %d: every message of the round was lost: the round fit in one window", round)
		}
		if sync == 0 && len(missing) > 0 {
			t.Errorf("cut %d: accepted messages lost with fsync per append: %v", round, missing)
		}
		// With group commit only a tail may be lost: commits are in
		// order, so a lost message is newer than every kept one.
		if len(lost) > 0 && len(kept) > 0 && slices.Max(kept) > slices.Min(lost) {
			t.Errorf("cut %d: lost %v but kept the later %d: not the last window", round, lost, slices.Max(kept))
		}
		mustHave = kept
		if err := os.Remove(snap); err != nil {
			t.Fatal(err)
		}
	}
}

// checkCut mounts the disk image snap and opens the outbox on it, and
// returns the messages of accepted that are pending there or were
// delivered (kept), and those that are neither (missing).
func checkCut(t *testing.T, snap string, accepted map[uint64]string, r *receiver) (kept, missing []uint64) {
	t.Helper()
	mnt := mountImage(t, snap, false)
	o, err := Open(filepath.Join(mnt, "outbox"), Config{})
	if err != nil {
		t.Fatalf("Open after the power cut: %v", err)
	}
	defer o.Close()
	if ce := o.MovedAside(); ce != nil {
		t.Fatalf("the store was unreadable after the power cut: %v", ce)
	}
	pend := map[uint64]bool{}
	for _, n := range pendingN(t, o) {
		pend[n] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for n := range accepted {
		if _, ok := r.seen[[2]uint64{o.Epoch(), n}]; ok || pend[n] {
			kept = append(kept, n)
		} else {
			missing = append(missing, n)
		}
	}
	slices.Sort(kept)
	slices.Sort(missing)
	return kept, missing
}

// smallDisk mounts a 512 KiB tmpfs for t and returns its mount point;
// cleanup unmounts it (after the outbox opened there is closed).
func smallDisk(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	mnt := t.TempDir()
	sh(t, "mount", "-t", "tmpfs", "-o", "size=512k", "outbox-full", mnt)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

func TestFullDiskFailsAppendClearlyAndRecovers(t *testing.T) {
	t.Parallel()
	mnt := smallDisk(t)
	o := openT(t, mnt, Config{})
	payload := make([]byte, 10<<10)
	var (
		ns  []uint64
		err error
	)
	for range 1000 {
		var n uint64
		if n, err = o.Append(context.Background(), Message{Stream: "s", Payload: payload}); err != nil {
			break
		}
		ns = append(ns, n)
	}
	t.Logf("%d appends of 10 KiB, then: %v", len(ns), err)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append on a full disk: %v, want an error wrapping ENOSPC", err)
	}
	if !strings.Contains(err.Error(), o.path) {
		t.Errorf("error %q does not name the store %s", err, o.path)
	}
	if ce := o.MovedAside(); ce != nil {
		t.Fatalf("a full disk moved the store aside: %v", ce)
	}
	if s := o.Stats(); s.Records != len(ns) {
		t.Errorf("%d pending after the failed Append, want %d", s.Records, len(ns))
	}
	// The receiver catches up: acknowledged messages free pages that
	// the next appends reuse.
	for _, n := range ns[:len(ns)/2] {
		if err := o.Ack(n); err != nil {
			t.Fatalf("Ack on a full disk: %v", err)
		}
	}
	appendT(t, o, "s", Important, "after")
	// And the store is intact after a reopen.
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o2 := openT(t, mnt, Config{})
	if got, want := len(pendingN(t, o2)), len(ns)-len(ns)/2+1; got != want {
		t.Errorf("%d pending after reopen, want %d", got, want)
	}
}

// TestGroupCommitFailureWakesAWaitingAppend: an Append waiting for a
// group commit to make room in a full queue gets the commit's error (a
// full disk) when the commit fails, rather than waiting for ever.
func TestGroupCommitFailureWakesAWaitingAppend(t *testing.T) {
	t.Parallel()
	mnt := smallDisk(t)
	// An hour's interval: the only commit is the one a full queue forces.
	o := openT(t, mnt, Config{SyncInterval: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	payload := make([]byte, 64<<10)
	var err error
	for i := 0; i < maxQueued && err == nil; i++ {
		_, err = o.Append(ctx, Message{Stream: "s", Payload: payload})
	}
	if ctx.Err() != nil {
		t.Fatalf("the Append waiting for the failed commit ended only with its context: %v", err)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append after a group commit on a full disk: %v, want an error wrapping ENOSPC", err)
	}
}

// TestCloseReportsAFailedGroupCommit: Close commits what the group commit
// queued, and says so when that fails (a full disk): those messages are
// lost, and the caller must know.
func TestCloseReportsAFailedGroupCommit(t *testing.T) {
	t.Parallel()
	mnt := smallDisk(t)
	o := openT(t, mnt, Config{SyncInterval: time.Hour})
	payload := make([]byte, 10<<10)
	for range 100 { // 1 MB queued, on a 512 KiB disk
		if _, err := o.Append(context.Background(), Message{Stream: "s", Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	err := o.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Close of a group commit that cannot be written: %v, want an error wrapping ENOSPC", err)
	}
	t.Log(err)
	if s := o.Stats(); s.Records != 0 || s.Dropped != 100 {
		t.Errorf("after the failed commit: %d pending, %d dropped; want 0 and 100", s.Records, s.Dropped)
	}
}
