package wifilab

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// readNewc parses a cpio "newc" archive as the kernel's initramfs unpacker
// does (init/initramfs.c): 110-byte headers, names and data padded to 4.
func readNewc(t *testing.T, b []byte) map[string]string {
	t.Helper()
	files := map[string]string{}
	for off := 0; ; {
		if len(b)-off < 110 || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("header field %d at %d: %v", i, off, err)
			}
			return int(v)
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		off = (off + 110 + namesize + 3) &^ 3
		if name == "TRAILER!!!" {
			return files
		}
		kind := map[int]string{modeDir: "dir", modeFile: "file", modeSymlink: "link"}[mode&0o170000]
		files[name] = kind + ":" + string(b[off:off+size])
		off = (off + size + 3) &^ 3
	}
}

func TestArchiveIsWhatTheKernelUnpacks(t *testing.T) {
	src := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho odd-length\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := newArchive()
	if err := a.file("usr/sbin/prog", src); err != nil {
		t.Fatal(err)
	}
	a.bytes("/etc/x", 0o644, []byte("abc"))
	a.symlink("bin/sh", "/usr/bin/dash")
	var buf bytes.Buffer
	if err := a.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	got := readNewc(t, buf.Bytes())
	want := map[string]string{
		"usr": "dir:", "usr/sbin": "dir:", "usr/sbin/prog": "file:#!/bin/sh\necho odd-length\n",
		"etc": "dir:", "etc/x": "file:abc", "bin": "dir:", "bin/sh": "link:/usr/bin/dash",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("archive has %d entries, want %d: %v", len(got), len(want), got)
	}
	if err := a.file("missing", filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("adding a missing host file: no error")
	}
}

func TestPackageVersionsNamesWhatIsMissing(t *testing.T) {
	if _, err := os.Stat("/usr/bin/dpkg-query"); err != nil {
		netnstest.Skip(t, "not a Debian machine (no dpkg-query)")
	}
	_, err := packageVersions(context.Background(), []string{"dash", "netmon-no-such-package"})
	if err == nil || !strings.Contains(err.Error(), "apt-get install netmon-no-such-package") {
		t.Fatalf("err = %v, want one naming the package to install", err)
	}
}

func TestModulesNamesAMissingModule(t *testing.T) {
	dir := t.TempDir()
	err := addModules(newArchive(), dir, "6.1.0-test")
	if err == nil || !strings.Contains(err.Error(), "no module mac80211_hwsim") {
		t.Fatalf("err = %v, want one naming mac80211_hwsim", err)
	}
}

// TestBootFailureSaysWhyAndEnds: a kernel QEMU cannot boot ends Boot with
// QEMU's own words, well inside the boot timeout, and leaves nothing behind.
func TestBootFailureSaysWhyAndEnds(t *testing.T) {
	if _, err := lookTool("qemu-system-x86_64"); err != nil {
		netnstest.Skip(t, "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
	}
	dir := t.TempDir()
	img := &Image{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.cpio")}
	os.WriteFile(img.Kernel, []byte("not a kernel"), 0o644)
	os.WriteFile(img.Initrd, nil, 0o644)
	agent := filepath.Join(dir, "labagent")
	os.WriteFile(agent, []byte("#!/bin/sh\n"), 0o755)
	start := time.Now()
	lab, err := Boot(context.Background(), img, Options{Agent: agent, BootTimeout: 30 * time.Second})
	if err == nil {
		lab.Close()
		t.Fatal("Boot of a file that is no kernel: no error")
	}
	if !strings.Contains(err.Error(), "qemu exited") {
		t.Errorf("err = %v, want it to say that qemu exited, with its words", err)
	}
	t.Logf("%v after %v", err, time.Since(start).Round(time.Millisecond))
}
