// editor: collaborative documents made of elements, with optimistic
// concurrency: every element carries a version, and an update or delete
// that names a stale version aborts.
//
// Resources
//   editor::Registry at the channel account 0x…01: next document id and
//                    the number of documents.
//   editor::Document at the derived account "edoc" + doc id: owner, title,
//                    next element id, the ids of its elements.
//   editor::Element  at the derived account "edel" + doc id + element id:
//                    kind, data, version, last author and height, so an
//                    edit changes one element, not the document.

import {
  Address,
  Reader,
  Writer,
  abortWith,
  delRaw,
  emit,
  exists,
  height,
  input,
  output,
  putGlobal,
  sender,
  tryBorrowGlobal,
} from "../sdk";

// Limits.
const MAX_TITLE: i32 = 128;
const MAX_KIND: i32 = 32;
const MAX_DATA: i32 = 8192;
const MAX_ELEMENTS: i32 = 1024;

// Abort codes.
const ERR_NO_REGISTRY: i32 = 100;
const ERR_NO_DOCUMENT: i32 = 101;
const ERR_NO_ELEMENT: i32 = 102;
const ERR_STALE: i32 = 103;
const ERR_NOT_OWNER: i32 = 104;
const ERR_FULL: i32 = 105;
const ERR_EMPTY: i32 = 106;

class Registry {
  nextDoc: u32 = 1;
  documents: u32 = 0;

  typeName(): string {
    return "editor::Registry";
  }
  encode(w: Writer): void {
    w.u32(this.nextDoc).u32(this.documents);
  }
  decode(r: Reader): void {
    this.nextDoc = r.u32();
    this.documents = r.u32();
  }
}

class Document {
  id: u32 = 0;
  owner: Address = new Address();
  title: string = "";
  nextElement: u32 = 1;
  elements: u32[] = [];

  typeName(): string {
    return "editor::Document";
  }
  encode(w: Writer): void {
    w.u32(this.id).address(this.owner).string(this.title).u32(this.nextElement);
    w.len(this.elements.length);
    for (let i = 0; i < this.elements.length; i++) w.u32(this.elements[i]);
  }
  decode(r: Reader): void {
    this.id = r.u32();
    this.owner = r.address();
    this.title = r.string(MAX_TITLE);
    this.nextElement = r.u32();
    const n = r.len(MAX_ELEMENTS);
    this.elements = new Array<u32>(n);
    for (let i = 0; i < n; i++) this.elements[i] = r.u32();
  }
}

class Element {
  id: u32 = 0;
  doc: u32 = 0;
  kind: string = "";
  data: Uint8Array = new Uint8Array(0);
  version: u64 = 0;
  author: Address = new Address();
  updatedHeight: u64 = 0;

  typeName(): string {
    return "editor::Element";
  }
  encode(w: Writer): void {
    w.u32(this.id).u32(this.doc).string(this.kind).bytes(this.data);
    w.u64(this.version).address(this.author).u64(this.updatedHeight);
  }
  decode(r: Reader): void {
    this.id = r.u32();
    this.doc = r.u32();
    this.kind = r.string(MAX_KIND);
    this.data = r.stringBytes(MAX_DATA);
    this.version = r.u64();
    this.author = r.address();
    this.updatedHeight = r.u64();
  }
}

function docAccount(doc: u32): Address {
  return Address.derive("edoc", doc, 0, 0);
}

function elementAccount(doc: u32, element: u32): Address {
  return Address.derive("edel", doc, element, 0);
}

function registry(): Registry {
  const g = tryBorrowGlobal<Registry>(Address.channel());
  if (g === null) {
    abortWith(ERR_NO_REGISTRY, "editor not initialised");
    return new Registry();
  }
  return g;
}

function document(doc: u32): Document {
  const d = tryBorrowGlobal<Document>(docAccount(doc));
  if (d === null) {
    abortWith(ERR_NO_DOCUMENT, "no document " + doc.toString());
    return new Document();
  }
  return d;
}

function element(doc: u32, id: u32): Element {
  const e = tryBorrowGlobal<Element>(elementAccount(doc, id));
  if (e === null) {
    abortWith(ERR_NO_ELEMENT, "no element " + id.toString() + " in document " + doc.toString());
    return new Element();
  }
  return e;
}

function checkVersion(e: Element, version: u64): void {
  if (e.version != version) {
    abortWith(
      ERR_STALE,
      "stale version " + version.toString() + " of element " + e.id.toString() + " (now " + e.version.toString() + ")",
    );
  }
}

function nonEmpty(s: string, what: string): string {
  if (s.length == 0) abortWith(ERR_EMPTY, what + " must not be empty");
  return s;
}

function changed(type: string, doc: u32, id: u32, version: u64, who: Address): void {
  emit(type, new Writer(40).u32(doc).u32(id).u64(version).address(who).finish());
}

// init creates the registry. Its input is ignored.
export function init(len: i32): i32 {
  if (!exists<Registry>(Address.channel())) putGlobal<Registry>(Address.channel(), new Registry());
  return 0;
}

// create_document(title: string) outputs the new document's id (u32).
export function create_document(len: i32): i32 {
  const r = input(len);
  const title = nonEmpty(r.string(MAX_TITLE), "title");
  r.finish();
  const g = registry();
  const d = new Document();
  d.id = g.nextDoc;
  d.owner = sender();
  d.title = title;
  putGlobal<Document>(docAccount(d.id), d);
  g.nextDoc++;
  g.documents++;
  putGlobal<Registry>(Address.channel(), g);
  emit("editor::DocumentCreated", new Writer(64).u32(d.id).address(d.owner).string(title).finish());
  output(new Writer(4).u32(d.id).finish());
  return 0;
}

// create_element(doc: u32, kind: string, data: string) outputs the new
// element's id (u32); its version is 1.
export function create_element(len: i32): i32 {
  const r = input(len);
  const doc = r.u32();
  const kind = nonEmpty(r.string(MAX_KIND), "kind");
  const data = r.stringBytes(MAX_DATA);
  r.finish();
  const d = document(doc);
  if (d.elements.length >= MAX_ELEMENTS) abortWith(ERR_FULL, "document " + doc.toString() + " is full");
  const e = new Element();
  e.id = d.nextElement;
  e.doc = doc;
  e.kind = kind;
  e.data = data;
  e.version = 1;
  e.author = sender();
  e.updatedHeight = height();
  putGlobal<Element>(elementAccount(doc, e.id), e);
  d.nextElement++;
  d.elements.push(e.id);
  putGlobal<Document>(docAccount(doc), d);
  changed("editor::ElementCreated", doc, e.id, e.version, e.author);
  output(new Writer(4).u32(e.id).finish());
  return 0;
}

// update_element(doc: u32, element: u32, version: u64, data: string)
// replaces the element's data if version is its current version, and
// outputs the new version (u64).
export function update_element(len: i32): i32 {
  const r = input(len);
  const doc = r.u32();
  const id = r.u32();
  const version = r.u64();
  const data = r.stringBytes(MAX_DATA);
  r.finish();
  const e = element(doc, id);
  checkVersion(e, version);
  e.data = data;
  e.version++;
  e.author = sender();
  e.updatedHeight = height();
  putGlobal<Element>(elementAccount(doc, id), e);
  changed("editor::ElementUpdated", doc, id, e.version, e.author);
  output(new Writer(8).u64(e.version).finish());
  return 0;
}

// delete_element(doc: u32, element: u32, version: u64) deletes the element
// if version is its current version.
export function delete_element(len: i32): i32 {
  const r = input(len);
  const doc = r.u32();
  const id = r.u32();
  const version = r.u64();
  r.finish();
  const d = document(doc);
  const e = element(doc, id);
  checkVersion(e, version);
  delRaw(elementAccount(doc, id), e.typeName());
  const i = d.elements.indexOf(id);
  if (i >= 0) d.elements.splice(i, 1);
  putGlobal<Document>(docAccount(doc), d);
  changed("editor::ElementDeleted", doc, id, version, sender());
  return 0;
}

// delete_document(doc: u32) deletes the document and its elements; owner
// only.
export function delete_document(len: i32): i32 {
  const r = input(len);
  const doc = r.u32();
  r.finish();
  const d = document(doc);
  const me = sender();
  if (!d.owner.equals(me)) abortWith(ERR_NOT_OWNER, "only the owner " + d.owner.toHex() + " may delete document " + doc.toString());
  const et = new Element().typeName();
  for (let i = 0; i < d.elements.length; i++) delRaw(elementAccount(doc, d.elements[i]), et);
  delRaw(docAccount(doc), d.typeName());
  const g = registry();
  g.documents--;
  putGlobal<Registry>(Address.channel(), g);
  emit("editor::DocumentDeleted", new Writer(20).u32(doc).address(me).finish());
  return 0;
}

// get_document(doc: u32) outputs the document and its elements in order.
export function get_document(len: i32): i32 {
  const r = input(len);
  const doc = r.u32();
  r.finish();
  const d = document(doc);
  const w = new Writer(1024);
  d.encode(w);
  w.len(d.elements.length);
  for (let i = 0; i < d.elements.length; i++) element(doc, d.elements[i]).encode(w);
  output(w.finish());
  return 0;
}
