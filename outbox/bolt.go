package outbox

// This file holds the wrappers around bbolt that keep a broken store from
// stopping the sender: panics and memory faults become errors, and pages
// bbolt would trust are checked first.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// isCorrupt reports whether err, from opening or reading the store, says
// that the store is unreadable, rather than that the disk, the
// permissions or another process stand in the way, which a fresh store
// would not mend.
func isCorrupt(err error) bool {
	switch {
	case errors.Is(err, berrors.ErrTimeout), errors.Is(err, os.ErrPermission),
		errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT),
		errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EMFILE),
		errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.ENOMEM):
		return false
	}
	return true
}

// openBolt opens the bbolt store at path. bbolt panics on some corrupt
// files (an unreadable freelist page) and reads past the end of a
// truncated one through its memory map; openBolt turns both into an
// error wrapping ErrCorrupt. The file is then closed, which releases its
// lock; bbolt's memory map of it is left (it was never returned to us).
func openBolt(path string) (db *bolt.DB, err error) {
	var f *os.File
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %v", ErrCorrupt, r)
			if f != nil {
				_ = f.Close()
			}
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      time.Second,
		FreelistType: bolt.FreelistMapType,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			var err error
			f, err = os.OpenFile(name, flag, mode)
			return f, err
		},
	})
}

// checkPages checks that every page in use (not free) of tx's store is
// of a known type and, with its overflow pages, within the store. A page
// in use spans 1+OverflowCount pages; a free page is stepped over one by
// one, since its old overflow pages may be in use again.
func checkPages(tx *bolt.Tx) error {
	for id := 0; ; {
		p, err := tx.Page(id)
		if err != nil {
			return err
		}
		if p == nil {
			return nil // past the last page
		}
		switch p.Type {
		case "free":
			id++
			continue
		case "meta", "freelist", "branch", "leaf":
		default:
			return fmt.Errorf("%w: page %d in use has type %s", ErrCorrupt, id, p.Type)
		}
		next := id + 1 + p.OverflowCount
		if q, err := tx.Page(next - 1); err != nil || q == nil {
			return fmt.Errorf("%w: page %d (%s) overflows %d pages, past the store's end", ErrCorrupt, id, p.Type, p.OverflowCount)
		}
		id = next
	}
}

// update runs fn in a write transaction, as bolt.DB.Update does, but
// turns a panic (bbolt panics on some corrupt pages) and a memory fault
// (a page past a truncated file's end) into an error wrapping
// ErrCorrupt, after rolling the transaction back so that its locks are
// released.
func update(db *bolt.DB, fn func(*bolt.Tx) error) error {
	return run(db, true, fn)
}

// view is update for a read-only transaction.
func view(db *bolt.DB, fn func(*bolt.Tx) error) error {
	return run(db, false, fn)
}

func run(db *bolt.DB, writable bool, fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	tx, err := db.Begin(writable)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
			func() {
				defer func() { _ = recover() }() // a rollback of a broken tx may panic too
				_ = tx.Rollback()
			}()
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if !writable {
		return tx.Rollback()
	}
	return tx.Commit()
}

// syncDir fsyncs the directory dir, so that the entries created or
// renamed in it survive a power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("outbox: fsync directory %s: %w", dir, err)
	}
	return nil
}

// makeDir creates dir and its missing parents (mode 0700), and fsyncs the
// parent of each directory it created, so that a store accepted in dir
// survives a power loss with the path to it.
func makeDir(dir string) error {
	var created []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, os.ErrNotExist) {
			break
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for i := len(created) - 1; i >= 0; i-- {
		if err := syncDir(filepath.Dir(created[i])); err != nil {
			return err
		}
	}
	return nil
}

// closeQuietly closes db, which may be broken.
func closeQuietly(db *bolt.DB) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() { _ = recover() }()
	_ = db.Close()
}
