package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// The kinds of store a channel's Raft log and stable store (current term,
// vote) live in (Config.LogStore).
const (
	// LogStoreBolt is raft-boltdb/v2: one bbolt file, DIR/channels/<id>/raft.db.
	// Every StoreLogs is a bbolt transaction: a copy-on-write of the B+tree
	// pages it touches, then two fsyncs (pages, then the meta page).
	LogStoreBolt = "bolt"
	// LogStoreWAL is hashicorp/raft-wal: append-only segment files and a
	// small bbolt file for the segment list and the stable store, in
	// DIR/channels/<id>/wal/. Every StoreLogs appends its frames and
	// fsyncs once; a snapshot's truncation deletes whole segments.
	LogStoreWAL = "wal"

	// DefaultLogStore is the kind a new channel gets when Config.LogStore
	// is empty. raft-wal spends a third of bolt's CPU per StoreLogs (3–13 %
	// less CPU per tx on each member at saturation, within this machine's
	// noise), but its 16 MiB preallocated segments hide a full disk until
	// a segment rolls, so a member whose disk fills keeps acknowledging
	// into space it cannot grow, and v0.4.0 needed two workarounds here
	// (walStore). bolt is what the node's failure handling is tested on
	// (docs/BENCHMARKS.md, "the Raft log store").
	DefaultLogStore = LogStoreBolt
)

const (
	// boltFile is the bolt store's file in a channel's folder.
	boltFile = "raft.db"
	// walDir is the wal store's folder in a channel's folder.
	walDir = "wal"
	// walSegmentSize is the size of one raft-wal segment file, which it
	// preallocates: 16 MiB rather than raft-wal's 64 MiB default, since a
	// node keeps one open segment per channel it hosts. A segment holds
	// about 4,000 batches of 4 KiB.
	walSegmentSize = 16 << 20
)

// raftStore is a channel's Raft log store and stable store in one, as both
// kinds are. Raft calls it from its own goroutines; both kinds are safe for
// concurrent use. Close is called once, after Raft has shut down.
type raftStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

var (
	_ raftStore = (*raftboltdb.BoltStore)(nil)
	_ raftStore = walStore{}
	// Raft must know the wal takes no gap in its indexes: after installing
	// a snapshot it then deletes the whole log instead of leaving one.
	_ raft.MonotonicLogStore = walStore{}
)

// walStore is a raft-wal WAL with the bbolt file that holds its segment
// list and stable store. raft-wal v0.4.0's Close leaves that file open,
// and its lock with it, so that the channel could not be opened again in
// the same process: Close closes it after the WAL.
type walStore struct {
	*raftwal.WAL
	meta *metadb.BoltMetaDB
}

// GetLog answers raft.ErrLogNotFound for an index below FirstIndex.
// raft-wal v0.4.0 looks in its open (tail) segment first and still finds
// entries a head truncation removed there: the leader would then send a
// follower that is behind the truncated entries instead of the snapshot
// Raft means it to get, skipping the snapshot's checks.
func (s walStore) GetLog(index uint64, log *raft.Log) error {
	first, err := s.WAL.FirstIndex()
	if err != nil {
		return err
	}
	if index < first {
		return raft.ErrLogNotFound
	}
	return s.WAL.GetLog(index, log)
}

func (s walStore) Close() error {
	err := s.WAL.Close()
	if merr := s.meta.Close(); err == nil {
		err = merr
	}
	return err
}

// validLogStore reports whether kind may be Config.LogStore.
func validLogStore(kind string) bool {
	return kind == "" || kind == LogStoreBolt || kind == LogStoreWAL
}

// logStorePath is where a store of kind lives in the channel folder dir.
func logStorePath(dir, kind string) string {
	if kind == LogStoreWAL {
		return filepath.Join(dir, walDir)
	}
	return filepath.Join(dir, boltFile)
}

// foundLogStore returns the kind of Raft store the channel folder dir
// holds, "" when it holds none. A folder with both is refused: which one
// holds the channel's log and vote cannot be told from here, and opening
// the wrong one would forget them.
func foundLogStore(dir string) (string, error) {
	var found []string
	st, err := os.Stat(filepath.Join(dir, boltFile))
	switch {
	case err == nil && st.Mode().IsRegular():
		found = append(found, LogStoreBolt)
	case err == nil:
		return "", fmt.Errorf("%w: %s is not a file", ErrLogStore, filepath.Join(dir, boltFile))
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("log store: %w", err)
	}
	wd := filepath.Join(dir, walDir)
	entries, err := os.ReadDir(wd)
	switch {
	case err == nil && len(entries) > 0:
		found = append(found, LogStoreWAL)
	case err == nil, errors.Is(err, fs.ErrNotExist):
		// An empty wal/ is a store whose creation stopped before it wrote
		// anything: there is nothing in it to lose.
	default:
		if st, serr := os.Stat(wd); serr == nil && !st.IsDir() {
			return "", fmt.Errorf("%w: %s is not a folder", ErrLogStore, wd)
		}
		return "", fmt.Errorf("log store: %w", err)
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%w: %s holds both a bolt store (%s) and a wal store (%s/): keep the one the channel ran on and move the other away",
		ErrLogStore, dir, boltFile, walDir)
}

// openLogStore opens the Raft store of the channel folder dir: the kind
// the folder holds, or, in a folder that holds none, want (DefaultLogStore
// when empty). A want that is set and names the other kind than the one
// found is refused with ErrLogStore, naming both: opening an empty store
// of the other kind would forget the channel's log, its term and its vote.
// It returns the store and its kind.
func openLogStore(dir, want string, logger hclog.Logger) (raftStore, string, error) {
	if !validLogStore(want) {
		return nil, "", fmt.Errorf("%w: LogStore %q is not %q or %q", ErrConfig, want, LogStoreBolt, LogStoreWAL)
	}
	kind, err := foundLogStore(dir)
	if err != nil {
		return nil, "", err
	}
	switch {
	case kind == "" && want == "":
		kind = DefaultLogStore
	case kind == "":
		kind = want
	case want != "" && want != kind:
		return nil, "", fmt.Errorf("%w: the channel's Raft log is a %s store (%s) but the log store asked for is %s: start with log store %s, or remove %s to join the channel afresh",
			ErrLogStore, kind, logStorePath(dir, kind), want, kind, dir)
	}
	path := logStorePath(dir, kind)
	switch kind {
	case LogStoreWAL:
		if err := os.MkdirAll(path, 0o700); err != nil {
			return nil, "", fmt.Errorf("log store %s: %w", path, err)
		}
		meta := &metadb.BoltMetaDB{}
		w, err := raftwal.Open(path, raftwal.WithMetaStore(meta), raftwal.WithSegmentSize(walSegmentSize), raftwal.WithLogger(logger))
		if err != nil {
			meta.Close()
			return nil, "", fmt.Errorf("log store %s: %w", path, err)
		}
		return walStore{WAL: w, meta: meta}, kind, nil
	default:
		b, err := raftboltdb.New(raftboltdb.Options{Path: path})
		if err != nil {
			return nil, "", fmt.Errorf("log store %s: %w", path, err)
		}
		return b, kind, nil
	}
}
