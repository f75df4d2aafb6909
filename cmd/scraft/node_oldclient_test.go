package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/scraft/scraft/clientapi"
	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/internal/testutil/oldclientpb"
	"github.com/scraft/scraft/protocol"
)

// TestOldClientAgainstNode runs a client built from the client API's proto
// as it was before the clientapi package (internal/testutil/oldclientpb)
// against a node of today: it binds, joins, subscribes, calls and sees its
// outcome in the subscription. The wire names are kept, so nothing an old
// client sends or reads has changed.
func TestOldClientAgainstNode(t *testing.T) {
	r, key, id := startAPINode(t, 16)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := dialNodeTLS(t, r.srv.Addr(), key.Address())
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, oldclientpb.StreamMethod)
	if err != nil {
		t.Fatal(err)
	}
	send := func(m *oldclientpb.ClientMessage) {
		t.Helper()
		if err := st.SendMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() *oldclientpb.ServerMessage {
		t.Helper()
		m := new(oldclientpb.ServerMessage)
		if err := st.RecvMsg(m); err != nil {
			t.Fatal(err)
		}
		if m.GetError() != nil {
			t.Fatalf("request %d: error %d: %s", m.GetId(), m.GetError().GetCode(), m.GetError().GetMessage())
		}
		return m
	}

	// Bind: the node's challenge, signed for the address dialed.
	ch := recv().GetChallenge()
	if ch == nil || ch.GetVersion() != 1 {
		t.Fatalf("first message is no version 1 challenge: %v", ch)
	}
	send(&oldclientpb.ClientMessage{Body: &oldclientpb.ClientMessage_Bind{Bind: &oldclientpb.Bind{
		PublicKey: key.Public(), Nonce: ch.GetNonce(), NodeAddress: r.srv.Addr(),
		Signature: key.Sign(clientapi.DomainClientBind, clientapi.BindMessage(ch.GetNonce(), r.srv.Addr())),
	}}})
	if b := recv().GetBound(); b.GetAddress() != key.Address().String() {
		t.Fatalf("bound to %q, want %s", b.GetAddress(), key.Address())
	}

	// Join: the channel's status and the next nonce.
	send(&oldclientpb.ClientMessage{Id: 1, Body: &oldclientpb.ClientMessage_Join{Join: &oldclientpb.JoinRequest{Channel: id[:]}}})
	j := recv()
	if j.GetId() != 1 || j.GetJoined() == nil || j.GetJoined().GetNextNonce() != 1 || !j.GetJoined().GetStatus().GetReady() {
		t.Fatalf("join answer %v", j)
	}

	// Subscribe from the start: a snapshot first.
	send(&oldclientpb.ClientMessage{Id: 2, Body: &oldclientpb.ClientMessage_Subscribe{Subscribe: &oldclientpb.SubscribeRequest{Channel: id[:]}}})
	snap := recv()
	if snap.GetId() != 2 || snap.GetSnapshot() == nil || len(snap.GetSnapshot().GetMembers()) != 1 {
		t.Fatalf("subscribe answer %v", snap)
	}

	// Call: the outcome, and the same outcome in the subscription.
	tx := protocol.SignTx(key, protocol.Tx{Channel: id, Nonce: 1, Function: "chat::send", Args: []byte("old;")})
	send(&oldclientpb.ClientMessage{Id: 3, Body: &oldclientpb.ClientMessage_Call{Call: &oldclientpb.CallRequest{Tx: protocol.Marshal(tx)}}})
	var call, update *oldclientpb.Outcome
	for call == nil || update == nil {
		m := recv()
		switch {
		case m.GetId() == 3 && m.GetCall() != nil:
			call = m.GetCall()
		case m.GetId() == 2 && len(m.GetUpdates().GetOutcomes()) > 0:
			update = m.GetUpdates().GetOutcomes()[0]
		default:
			t.Fatalf("unexpected message %v", m)
		}
	}
	hash := tx.Hash()
	if call.GetStatusName() != "ok" || call.GetHeight() != snap.GetSnapshot().GetHeight()+1 || string(call.GetHash()) != string(hash[:]) {
		t.Fatalf("call outcome %v", call)
	}
	if update.GetHeight() != call.GetHeight() || string(update.GetDigest()) != string(call.GetDigest()) {
		t.Fatalf("subscription outcome %v, call outcome %v", update, call)
	}
}

// TestClientProtoWireCompatible checks field by field that every message
// of the old client proto has the same number, kind and cardinality in
// today's, so that what TestOldClientAgainstNode exercises holds for the
// whole API.
func TestClientProtoWireCompatible(t *testing.T) {
	oldFile := (&oldclientpb.ClientMessage{}).ProtoReflect().Descriptor().ParentFile()
	newFile := (&clientpb.ClientMessage{}).ProtoReflect().Descriptor().ParentFile()
	if got := newFile.Services().Get(0); string(got.FullName()) != "scraft.client.v1.Client" || got.Methods().Get(0).Name() != "Stream" {
		t.Fatalf("service %s", got.FullName())
	}
	if newFile.Package() != "scraft.client.v1" {
		t.Fatalf("proto package %s", newFile.Package())
	}
	for i := 0; i < oldFile.Messages().Len(); i++ {
		om := oldFile.Messages().Get(i)
		nm := newFile.Messages().ByName(om.Name())
		if nm == nil {
			t.Errorf("message %s is gone", om.Name())
			continue
		}
		if err := sameFields(om, nm); err != nil {
			t.Error(err)
		}
	}
}

func sameFields(om, nm protoreflect.MessageDescriptor) error {
	for j := 0; j < om.Fields().Len(); j++ {
		of := om.Fields().Get(j)
		nf := nm.Fields().ByNumber(of.Number())
		switch {
		case nf == nil:
			return fmt.Errorf("%s.%s (%d) is gone", om.Name(), of.Name(), of.Number())
		case nf.Kind() != of.Kind() || nf.Cardinality() != of.Cardinality() || nf.Name() != of.Name():
			return fmt.Errorf("%s field %d: %s %s %s, was %s %s %s", om.Name(), of.Number(),
				nf.Cardinality(), nf.Kind(), nf.Name(), of.Cardinality(), of.Kind(), of.Name())
		case of.Message() != nil && of.Message().Name() != nf.Message().Name():
			return fmt.Errorf("%s field %d: message %s, was %s", om.Name(), of.Number(), nf.Message().Name(), of.Message().Name())
		}
	}
	return nil
}
