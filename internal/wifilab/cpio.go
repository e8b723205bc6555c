package wifilab

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// archive collects the files of an initramfs and writes them as a cpio
// "newc" archive, the format the kernel unpacks (Documentation/
// driver-api/early-userspace/buffer-format.rst). Parents are created as
// needed and written before their children.
type archive struct {
	entries map[string]entry
}

type entry struct {
	mode   uint32 // type and permission bits, as in st_mode
	src    string // host file to copy, for regular files
	data   []byte // contents, for regular files without src
	target string // for symbolic links
}

const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
)

func newArchive() *archive { return &archive{entries: map[string]entry{}} }

func (a *archive) dir(name string) {
	name = clean(name)
	if name == "" {
		return
	}
	if _, ok := a.entries[name]; ok {
		return
	}
	a.dir(path.Dir(name))
	a.entries[name] = entry{mode: modeDir | 0o755}
}

func (a *archive) add(name string, e entry) {
	name = clean(name)
	a.dir(path.Dir(name))
	a.entries[name] = e
}

// file adds the host file src at name, keeping its permission bits.
func (a *archive) file(name, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	a.add(name, entry{mode: modeFile | uint32(fi.Mode().Perm()), src: src})
	return nil
}

func (a *archive) bytes(name string, perm uint32, data []byte) {
	a.add(name, entry{mode: modeFile | perm, data: data})
}

func (a *archive) symlink(name, target string) {
	a.add(name, entry{mode: modeSymlink | 0o777, target: target})
}

func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// writeTo writes the archive, sorted by name so that every directory comes
// before what it holds and the same contents give the same bytes.
func (a *archive) writeTo(w io.Writer) error {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		if n != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	bw := bufio.NewWriterSize(w, 1<<20)
	for i, n := range names {
		e := a.entries[n]
		var size int64
		var body io.Reader
		switch {
		case e.mode&0o170000 == modeSymlink:
			size, body = int64(len(e.target)), strings.NewReader(e.target)
		case e.src != "":
			b, err := os.ReadFile(e.src)
			if err != nil {
				return err
			}
			size, body = int64(len(b)), bytes.NewReader(b)
		case e.mode&0o170000 == modeFile:
			size, body = int64(len(e.data)), bytes.NewReader(e.data)
		}
		if err := writeEntry(bw, uint32(i+1), e.mode, n, size, body); err != nil {
			return fmt.Errorf("cpio %s: %w", n, err)
		}
	}
	if err := writeEntry(bw, 0, 0, "TRAILER!!!", 0, nil); err != nil {
		return err
	}
	return bw.Flush()
}

func writeEntry(w *bufio.Writer, ino, mode uint32, name string, size int64, body io.Reader) error {
	nlink := 1
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize (with its NUL), check.
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	if _, err := w.WriteString(hdr + name + "\x00"); err != nil {
		return err
	}
	if err := pad(w, len(hdr)+len(name)+1); err != nil {
		return err
	}
	if body != nil {
		n, err := io.CopyN(w, body, size)
		if err != nil {
			return fmt.Errorf("copied %d of %d bytes: %w", n, size, err)
		}
	}
	return pad(w, int(size))
}

func pad(w *bufio.Writer, n int) error {
	if r := n % 4; r != 0 {
		_, err := w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}
