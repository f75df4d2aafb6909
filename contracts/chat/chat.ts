// chat: a channel-wide chat group with a bounded history.
//
// Resources
//   chat::ChatGroup at the channel account 0x…01: name, next message id,
//                   member count.
//   chat::Member    at each member's address: nickname, join height.
//   chat::Message   at the derived account "chat"+slot (slot = id % 100):
//                   one message of the ring of the last HISTORY messages, so
//                   a send changes one small resource, not the whole history.

import {
  Address,
  Reader,
  Writer,
  abortWith,
  borrowGlobal,
  tryBorrowGlobal,
  emit,
  emitLeave,
  exists,
  height,
  input,
  moveFrom,
  moveTo,
  output,
  putGlobal,
  sender,
  timestampMs,
} from "../sdk";

// Limits.
const HISTORY: u64 = 100;
const MAX_TEXT: i32 = 1024;
const MAX_NICK: i32 = 32;
const MAX_NAME: i32 = 64;
const MAX_PAGE: u32 = 100;

// Abort codes.
const ERR_NO_GROUP: i32 = 100;
const ERR_ALREADY_MEMBER: i32 = 101;
const ERR_NOT_MEMBER: i32 = 102;
const ERR_EMPTY: i32 = 103;

const DEFAULT_NAME = "scraft chat";

class ChatGroup {
  name: string = "";
  nextId: u64 = 0;
  members: u32 = 0;

  typeName(): string {
    return "chat::ChatGroup";
  }
  encode(w: Writer): void {
    w.string(this.name).u64(this.nextId).u32(this.members);
  }
  decode(r: Reader): void {
    this.name = r.string(MAX_NAME);
    this.nextId = r.u64();
    this.members = r.u32();
  }
}

class Member {
  nick: string = "";
  joinedHeight: u64 = 0;

  typeName(): string {
    return "chat::Member";
  }
  encode(w: Writer): void {
    w.string(this.nick).u64(this.joinedHeight);
  }
  decode(r: Reader): void {
    this.nick = r.string(MAX_NICK);
    this.joinedHeight = r.u64();
  }
}

class Message {
  id: u64 = 0;
  sender: Address = new Address();
  height: u64 = 0;
  timestampMs: i64 = 0;
  text: Uint8Array = new Uint8Array(0);

  typeName(): string {
    return "chat::Message";
  }
  encode(w: Writer): void {
    w.u64(this.id).address(this.sender).u64(this.height).i64(this.timestampMs).bytes(this.text);
  }
  decode(r: Reader): void {
    this.id = r.u64();
    this.sender = r.address();
    this.height = r.u64();
    this.timestampMs = r.i64();
    this.text = r.stringBytes(MAX_TEXT);
  }
}

function slotAccount(id: u64): Address {
  return Address.derive("chat", <u32>(id % HISTORY), 0, 0);
}

function group(): ChatGroup {
  const g = tryBorrowGlobal<ChatGroup>(Address.channel());
  if (g === null) {
    abortWith(ERR_NO_GROUP, "chat group not initialised");
    return new ChatGroup();
  }
  return g;
}

function nickOrAbort(r: Reader, what: string, max: i32): string {
  const s = r.string(max);
  if (s.length == 0) abortWith(ERR_EMPTY, what + " must not be empty");
  return s;
}

// init creates the chat group. Its input is ignored.
export function init(len: i32): i32 {
  if (!exists<ChatGroup>(Address.channel())) {
    const g = new ChatGroup();
    g.name = DEFAULT_NAME;
    putGlobal<ChatGroup>(Address.channel(), g);
  }
  return 0;
}

// join(nick: string) makes the sender a member.
export function join(len: i32): i32 {
  const r = input(len);
  const nick = nickOrAbort(r, "nick", MAX_NICK);
  r.finish();
  const g = group();
  const me = sender();
  if (exists<Member>(me)) abortWith(ERR_ALREADY_MEMBER, "already a member: " + me.toHex());
  const m = new Member();
  m.nick = nick;
  m.joinedHeight = height();
  moveTo<Member>(me, m);
  g.members++;
  putGlobal<ChatGroup>(Address.channel(), g);
  emit("chat::Joined", new Writer(64).address(me).string(nick).finish());
  return 0;
}

// send(text: string) posts a message (1..1024 bytes of UTF-8) and outputs
// its id (u64).
export function send(len: i32): i32 {
  const r = input(len);
  const text = r.stringBytes(MAX_TEXT);
  r.finish();
  if (text.length == 0) abortWith(ERR_EMPTY, "text must not be empty");
  const g = group();
  const me = sender();
  if (!exists<Member>(me)) abortWith(ERR_NOT_MEMBER, "not a member: " + me.toHex());
  const m = new Message();
  m.id = g.nextId;
  m.sender = me;
  m.height = height();
  m.timestampMs = timestampMs();
  m.text = text;
  putGlobal<Message>(slotAccount(m.id), m);
  g.nextId++;
  putGlobal<ChatGroup>(Address.channel(), g);
  const w = new Writer(64 + text.length);
  m.encode(w);
  emit("chat::Message", w.finish());
  output(new Writer(8).u64(m.id).finish());
  return 0;
}

// leave() ends the sender's membership and asks the node to take the
// member out of the channel (event scraft::Leave).
export function leave(len: i32): i32 {
  const r = input(len);
  r.finish();
  const g = group();
  const me = sender();
  if (!exists<Member>(me)) abortWith(ERR_NOT_MEMBER, "not a member: " + me.toHex());
  moveFrom<Member>(me);
  g.members--;
  putGlobal<ChatGroup>(Address.channel(), g);
  emit("chat::Left", new Writer(16).address(me).finish());
  emitLeave(me);
  return 0;
}

// rename(name: string) renames the group; members only.
export function rename(len: i32): i32 {
  const r = input(len);
  const name = nickOrAbort(r, "name", MAX_NAME);
  r.finish();
  const g = group();
  const me = sender();
  if (!exists<Member>(me)) abortWith(ERR_NOT_MEMBER, "not a member: " + me.toHex());
  g.name = name;
  putGlobal<ChatGroup>(Address.channel(), g);
  return 0;
}

// history(from: u64, limit: u32) outputs vec<Message>: the kept messages
// with id >= from, oldest first, at most limit (≤ 100).
export function history(len: i32): i32 {
  const r = input(len);
  let from = r.u64();
  let limit = r.u32();
  r.finish();
  if (limit > MAX_PAGE) limit = MAX_PAGE;
  const g = group();
  const oldest = g.nextId > HISTORY ? g.nextId - HISTORY : 0;
  if (from < oldest) from = oldest;
  let end = from + <u64>limit;
  if (end > g.nextId || end < from) end = g.nextId;
  const n = from < end ? <i32>(end - from) : 0;
  const w = new Writer(256);
  w.len(n);
  for (let id = from; id < end; id++) {
    borrowGlobal<Message>(slotAccount(id)).encode(w);
  }
  output(w.finish());
  return 0;
}
