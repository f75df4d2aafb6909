package transport_test

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/transport"
)

type nopFSM struct{}

func (nopFSM) Apply(l *raft.Log) any               { return string(l.Data) }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("not supported") }
func (nopFSM) Restore(r io.ReadCloser) error       { return r.Close() }

// A node serves every channel's Raft group on one port: one Server, one
// Transport per channel, handed to raft.NewRaft.
func ExampleServer() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv, err := transport.NewServer(ln, transport.DefaultConfig())
	if err != nil {
		panic(err)
	}
	// Other services register on srv.GRPC() here, before Serve.
	go srv.Serve()
	defer srv.Close()

	trans, err := srv.Transport("channel-1")
	if err != nil {
		panic(err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(srv.Addr())
	conf.HeartbeatTimeout = 100 * time.Millisecond
	conf.ElectionTimeout = 100 * time.Millisecond
	conf.LeaderLeaseTimeout = 100 * time.Millisecond
	conf.LogLevel = "off"
	leader := make(chan bool, 1)
	conf.NotifyCh = leader
	logs := raft.NewInmemStore()
	r, err := raft.NewRaft(conf, nopFSM{}, logs, logs, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		panic(err)
	}
	defer r.Shutdown() // also closes trans
	r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: trans.LocalAddr()}}})
	<-leader
	f := r.Apply([]byte("hello"), time.Second)
	if err := f.Error(); err != nil {
		panic(err)
	}
	fmt.Println(f.Response())
	// Output: hello
}
