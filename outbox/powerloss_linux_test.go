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

// powerLossDisk makes a 64 MiB ext4 file system on a loop device for t,
// and returns the child built, the file backing the device and the
// outbox's directory on it.
func powerLossDisk(t *testing.T) (bin, img, dir string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the power-loss test mounts file systems")
	}
	requireRoot(t)
	netnstest.RequireCommand(t, "losetup", "mount")
	netnstest.RequireCommand(t, "mkfs.ext4", "e2fsprogs")
	t.Parallel()
	bin = buildChild(t)
	img = filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	return bin, img, filepath.Join(mountImage(t, img, true), "outbox")
}

// cut is the power cut: it copies the disk as the loop device has
// received it (without the file system's dirty pages), mounts the copy
// (which replays ext4's journal, as a reboot does), opens the outbox
// there and returns the numbers of the messages pending in it. The store
// must be the one the child used (epoch), readable.
func cut(t *testing.T, img string, round int, epoch uint64) map[uint64]bool {
	t.Helper()
	snap := filepath.Join(t.TempDir(), fmt.Sprintf("cut%d.img", round))
	copyFile(t, img, snap)
	mnt := mountImage(t, snap, false)
	o, err := Open(filepath.Join(mnt, "outbox"), Config{})
	if err != nil {
		t.Fatalf("cut %d: Open after the power cut: %v", round, err)
	}
	defer o.Close()
	if ce := o.MovedAside(); ce != nil {
		t.Fatalf("cut %d: the store was unreadable after the power cut: %v", round, ce)
	}
	if o.Epoch() != epoch {
		t.Fatalf("cut %d: the store after the power cut has epoch %d, the child's was %d: it is a fresh one", round, o.Epoch(), epoch)
	}
	pend := map[uint64]bool{}
	for _, n := range pendingN(t, o) {
		pend[n] = true
	}
	return pend
}

// TestPowerLossLosesNothingAcceptedWithFsyncPerAppend cuts the power
// under the child 10 times, each after 20 to 219 accepted messages. The
// receiver acknowledges nothing, so no accepted message was delivered
// (at most the window of 16 was sent): each must be on the disk, and the
// disk alone is checked.
func TestPowerLossLosesNothingAcceptedWithFsyncPerAppend(t *testing.T) {
	bin, img, dir := powerLossDisk(t)
	r := newHoldingReceiver(t)
	var epoch uint64
	all := map[uint64]string{} // accepted in every round so far
	for round := range 10 {
		ru := &childRun{kill: 20 + rand.IntN(200), accepted: map[uint64]string{}}
		runChild(t, bin, dir, r, &epoch, ru, "-sync", "0")
		maps.Copy(all, ru.accepted)
		pend := cut(t, img, round, epoch)
		var lost []uint64
		for n := range all {
			if !pend[n] {
				lost = append(lost, n)
			}
		}
		slices.Sort(lost)
		r.mu.Lock()
		sent := 0
		for n := range ru.accepted {
			if _, ok := r.seen[[2]uint64{epoch, n}]; ok {
				sent++
			}
		}
		r.mu.Unlock()
		t.Logf("cut %d: %d accepted this round (%d of them sent, none acknowledged), %d in all, %d lost",
			round, len(ru.accepted), sent, len(all), len(lost))
		if len(ru.accepted) < 20 {
			t.Fatalf("cut %d: %d accepted messages, want at least 20", round, len(ru.accepted))
		}
		if len(lost) > 0 {
			t.Errorf("cut %d: %d accepted messages lost with fsync per append: %v", round, len(lost), lost[:min(len(lost), 10)])
		}
	}
}

// TestPowerLossLosesAtMostTheLastWindowWithGroupCommit cuts the power
// under the child 8 times with a group commit every syncInterval. The
// receiver acknowledges nothing, so the disk alone is checked. The child
// stamps each accepted message with the time Append returned, and each
// round runs for syncInterval + slack + up to 0.5 s of appends, so every
// round has messages older than syncInterval + slack at the cut: the
// promise is that those were committed. slack is what a commit may take
// beyond its interval on a loaded machine: the timer's lateness, a commit
// under way that the next one waits for, and the write and two fsyncs
// through ext4 and the loop device (milliseconds on an idle machine).
// Each cut must keep messages of its round, lose only a tail of them
// (commits are in order), lose only messages younger than syncInterval +
// slack, and keep every message an earlier cut kept.
func TestPowerLossLosesAtMostTheLastWindowWithGroupCommit(t *testing.T) {
	const (
		syncInterval = 50 * time.Millisecond
		slack        = time.Second
	)
	bin, img, dir := powerLossDisk(t)
	r := newHoldingReceiver(t)
	var (
		epoch    uint64
		mustHave []uint64 // kept at the last cut: no later cut may lose them
	)
	for round := range 8 {
		ru := &childRun{
			span:     syncInterval + slack + rand.N(500*time.Millisecond),
			accepted: map[uint64]string{},
			at:       map[uint64]time.Duration{},
		}
		runChild(t, bin, dir, r, &epoch, ru, "-sync", syncInterval.String(), "-pace", (syncInterval / 20).String())
		pend := cut(t, img, round, epoch)
		for _, n := range mustHave {
			if !pend[n] {
				t.Errorf("cut %d: message %d, kept at the cut before, is lost", round, n)
			}
		}
		var kept, lost []uint64 // of this round's
		for n := range ru.accepted {
			if pend[n] {
				kept = append(kept, n)
			} else {
				lost = append(lost, n)
			}
		}
		slices.Sort(kept)
		slices.Sort(lost)
		var oldest time.Duration // the oldest lost message's age at the cut
		for _, n := range lost {
			oldest = max(oldest, ru.killedAt-ru.at[n])
		}
		t.Logf("cut %d (SyncInterval %v): %d accepted this round over %v, %d kept, %d lost, the oldest lost accepted %v before the cut",
			round, syncInterval, len(ru.accepted), ru.span.Round(time.Millisecond), len(kept), len(lost), oldest.Round(time.Millisecond))
		if len(kept) == 0 {
			t.Errorf("cut %d: none of the %d messages accepted over %v was kept: no commit within SyncInterval %v + %v",
				round, len(ru.accepted), ru.span.Round(time.Millisecond), syncInterval, slack)
		}
		if oldest > syncInterval+slack {
			t.Errorf("cut %d: lost a message accepted %v before the cut: more than SyncInterval %v + slack %v",
				round, oldest.Round(time.Millisecond), syncInterval, slack)
		}
		// Commits are in order: a lost message is newer than every kept one.
		if len(lost) > 0 && len(kept) > 0 && kept[len(kept)-1] > lost[0] {
			t.Errorf("cut %d: lost %d but kept the later %d: not a tail", round, lost[0], kept[len(kept)-1])
		}
		mustHave = mustHave[:0]
		for n := range pend {
			mustHave = append(mustHave, n)
		}
	}
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
