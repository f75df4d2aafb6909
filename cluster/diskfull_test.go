package cluster

import (
	"errors"
	"syscall"
	"testing"

	"github.com/hashicorp/raft"
)

// fullDisk is a log store whose writes fail while full is set.
type fullDisk struct {
	raft.LogStore
	full bool
}

func (d *fullDisk) StoreLogs(ls []*raft.Log) error {
	if d.full {
		return syscall.ENOSPC
	}
	return d.LogStore.StoreLogs(ls)
}

func (d *fullDisk) StoreLog(l *raft.Log) error { return d.StoreLogs([]*raft.Log{l}) }

// TestStoreWatch: a failed log write is remembered, with when writes
// began to fail, until a write succeeds again; a nil watch has none.
func TestStoreWatch(t *testing.T) {
	disk := &fullDisk{LogStore: raft.NewInmemStore()}
	w := &storeWatch{LogStore: disk}
	if _, err := w.failure(); err != nil {
		t.Fatalf("failure before any write: %v", err)
	}
	if err := w.StoreLog(&raft.Log{Index: 1}); err != nil {
		t.Fatal(err)
	}
	disk.full = true
	if err := w.StoreLogs([]*raft.Log{{Index: 2}}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write to a full disk: %v", err)
	}
	since, err := w.failure()
	if !errors.Is(err, syscall.ENOSPC) || since.IsZero() {
		t.Fatalf("failure %v since %v", err, since)
	}
	if w.StoreLog(&raft.Log{Index: 2}) == nil {
		t.Fatal("second write to a full disk succeeded")
	}
	if again, _ := w.failure(); !again.Equal(since) {
		t.Fatalf("a second failure moved the start of the failures from %v to %v", since, again)
	}
	disk.full = false
	if err := w.StoreLog(&raft.Log{Index: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.failure(); err != nil {
		t.Fatalf("failure after a write succeeded: %v", err)
	}
	var none *storeWatch
	if _, err := none.failure(); err != nil {
		t.Fatal(err)
	}
}
