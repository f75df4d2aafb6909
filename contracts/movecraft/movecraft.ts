// movecraft: a voxel land players walk in, building and breaking blocks,
// where sand falls and wheat grows, one step per tick.
//
// The land is 128×128×32 voxels (x, y across, z up; z = 0 is bedrock), cut
// into 16×16×16 chunks. Each chunk is its own resource, so placing a block
// changes one 4 KiB chunk, not the world. Untouched chunks are not stored:
// their voxels come from a deterministic terrain function, and a chunk is
// written only once something in it changes.
//
// Resources
//   movecraft::Land     at the channel account 0x…01: size, player count.
//   movecraft::Schedule at the channel account: what on_tick advances —
//                       growing crops, falling sand, moving players. on_tick
//                       works only on these (and the chunks they touch),
//                       never on the whole world; an idle tick writes
//                       nothing.
//   movecraft::Player   at each player's address: name, inventory.
//   movecraft::Position at each player's address: where the player is, apart
//                       from the rest so a step rewrites 6 bytes.
//   movecraft::Chunk    at the derived account "mchk" + cx + cy + cz (u32
//                       chunk coordinates, little endian): 4096 voxel bytes,
//                       index (z%16*16 + y%16)*16 + x%16.

import {
  Address,
  Reader,
  Writer,
  abortWith,
  emit,
  emitLeave,
  exists,
  getInto,
  input,
  output,
  putGlobal,
  putRaw,
  sender,
  tryBorrowGlobal,
  delRaw,
  ERR_BAD_INPUT,
} from "../sdk";

// World geometry.
const CHUNK: i32 = 16;
const CX: i32 = 8;
const CY: i32 = 8;
const CZ: i32 = 2;
const SIZE_X: i32 = CX * CHUNK;
const SIZE_Y: i32 = CY * CHUNK;
const SIZE_Z: i32 = CZ * CHUNK;
const CHUNK_VOXELS: i32 = CHUNK * CHUNK * CHUNK;
// A stored chunk is the canonical encoding of bytes: ULEB128(4096) = 80 20.
const CHUNK_HEADER: i32 = 2;
const CHUNK_TYPE = "movecraft::Chunk";
const POS_TYPE = "movecraft::Position";
const POS_LEN: i32 = 6; // x, y, z: u16 each

// Blocks (voxel values) and items (inventory). Blocks are items too.
const AIR: u8 = 0;
const BEDROCK: u8 = 1;
const STONE: u8 = 2;
const DIRT: u8 = 3;
const GRASS: u8 = 4;
const SAND: u8 = 5;
const WOOD: u8 = 6;
const WHEAT_0: u8 = 8; // crop stages 8..11
const WHEAT_RIPE: u8 = 11;
const SEEDS: u8 = 20; // item only: placed as WHEAT_0
const WHEAT: u8 = 21; // item only: harvested from WHEAT_RIPE

// Rules.
const REACH: i32 = 5;
const GROW_TICKS: u32 = 10;
// A world holds every member of a channel of several hundred: the land
// gives each of 1024 players 16 columns, and on_tick with all of them
// walking stays well within the default gas limit (contracts/README.md).
const MAX_PLAYERS: u32 = 768;
const MAX_CROPS: i32 = 1024;
const MAX_FALLING: i32 = 1024;
const MAX_SLOTS: i32 = 32;
const MAX_NAME: i32 = 32;

// Abort codes.
const ERR_NO_LAND: i32 = 100;
const ERR_ALREADY_JOINED: i32 = 101;
const ERR_NOT_PLAYER: i32 = 102;
const ERR_OUT_OF_WORLD: i32 = 103;
const ERR_TOO_FAR: i32 = 104;
const ERR_OCCUPIED: i32 = 105;
const ERR_NO_ITEM: i32 = 106;
const ERR_NOT_PLACEABLE: i32 = 107;
const ERR_UNBREAKABLE: i32 = 108;
const ERR_FULL: i32 = 109;
const ERR_BAD_CHUNK: i32 = 110;

class Land {
  sizeX: u16 = <u16>SIZE_X;
  sizeY: u16 = <u16>SIZE_Y;
  sizeZ: u16 = <u16>SIZE_Z;
  players: u32 = 0;

  typeName(): string {
    return "movecraft::Land";
  }
  encode(w: Writer): void {
    w.u16(this.sizeX).u16(this.sizeY).u16(this.sizeZ).u32(this.players);
  }
  decode(r: Reader): void {
    this.sizeX = r.u16();
    this.sizeY = r.u16();
    this.sizeZ = r.u16();
    this.players = r.u32();
  }
}

class Pos {
  x: i32 = 0;
  y: i32 = 0;
  z: i32 = 0;

  typeName(): string {
    return "movecraft::Position";
  }
  static of(x: i32, y: i32, z: i32): Pos {
    const p = new Pos();
    p.x = x;
    p.y = y;
    p.z = z;
    return p;
  }
  encode(w: Writer): void {
    w.u16(<u16>this.x).u16(<u16>this.y).u16(<u16>this.z);
  }
  decode(r: Reader): void {
    this.x = <i32>r.u16();
    this.y = <i32>r.u16();
    this.z = <i32>r.u16();
  }
  same(o: Pos): bool {
    return this.x == o.x && this.y == o.y && this.z == o.z;
  }
}

class Crop {
  pos: Pos = new Pos();
  age: u32 = 0;
}

class Mover {
  player: Address = new Address();
  target: Pos = new Pos();
}

class Schedule {
  crops: Crop[] = [];
  falling: Pos[] = [];
  moving: Mover[] = [];

  typeName(): string {
    return "movecraft::Schedule";
  }
  encode(w: Writer): void {
    w.len(this.crops.length);
    for (let i = 0; i < this.crops.length; i++) {
      this.crops[i].pos.encode(w);
      w.u32(this.crops[i].age);
    }
    w.len(this.falling.length);
    for (let i = 0; i < this.falling.length; i++) this.falling[i].encode(w);
    w.len(this.moving.length);
    for (let i = 0; i < this.moving.length; i++) {
      w.address(this.moving[i].player);
      this.moving[i].target.encode(w);
    }
  }
  decode(r: Reader): void {
    let n = r.len(MAX_CROPS);
    this.crops = new Array<Crop>(n);
    for (let i = 0; i < n; i++) {
      const c = new Crop();
      c.pos.decode(r);
      c.age = r.u32();
      this.crops[i] = c;
    }
    n = r.len(MAX_FALLING);
    this.falling = new Array<Pos>(n);
    for (let i = 0; i < n; i++) {
      const p = new Pos();
      p.decode(r);
      this.falling[i] = p;
    }
    n = r.len(<i32>MAX_PLAYERS);
    this.moving = new Array<Mover>(n);
    for (let i = 0; i < n; i++) {
      const m = new Mover();
      m.player = r.address();
      m.target.decode(r);
      this.moving[i] = m;
    }
  }
  isEmpty(): bool {
    return this.crops.length == 0 && this.falling.length == 0 && this.moving.length == 0;
  }
  addFalling(p: Pos): void {
    for (let i = 0; i < this.falling.length; i++) if (this.falling[i].same(p)) return;
    if (this.falling.length >= MAX_FALLING) abortWith(ERR_FULL, "too much falling sand");
    this.falling.push(p);
  }
  removeMover(a: Address): void {
    for (let i = 0; i < this.moving.length; i++) {
      if (this.moving[i].player.equals(a)) {
        this.moving.splice(i, 1);
        return;
      }
    }
  }
  removeCrop(p: Pos): void {
    for (let i = 0; i < this.crops.length; i++) {
      if (this.crops[i].pos.same(p)) {
        this.crops.splice(i, 1);
        return;
      }
    }
  }
}

class Slot {
  item: u8 = 0;
  count: u32 = 0;
}

class Player {
  name: string = "";
  inventory: Slot[] = []; // sorted by item, no zero counts

  typeName(): string {
    return "movecraft::Player";
  }
  encode(w: Writer): void {
    w.string(this.name);
    w.len(this.inventory.length);
    for (let i = 0; i < this.inventory.length; i++) w.u8(this.inventory[i].item).u32(this.inventory[i].count);
  }
  decode(r: Reader): void {
    this.name = r.string(MAX_NAME);
    const n = r.len(MAX_SLOTS);
    this.inventory = new Array<Slot>(n);
    for (let i = 0; i < n; i++) {
      const s = new Slot();
      s.item = r.u8();
      s.count = r.u32();
      this.inventory[i] = s;
    }
  }
  count(item: u8): u32 {
    for (let i = 0; i < this.inventory.length; i++) if (this.inventory[i].item == item) return this.inventory[i].count;
    return 0;
  }
  give(item: u8, n: u32): void {
    let i = 0;
    while (i < this.inventory.length && this.inventory[i].item < item) i++;
    if (i < this.inventory.length && this.inventory[i].item == item) {
      const c = this.inventory[i].count + n;
      this.inventory[i].count = c < n ? 0xffffffff : c;
      return;
    }
    if (this.inventory.length >= MAX_SLOTS) abortWith(ERR_FULL, "inventory full");
    const s = new Slot();
    s.item = item;
    s.count = n;
    this.inventory.push(s);
    for (let k = this.inventory.length - 1; k > i; k--) this.inventory[k] = this.inventory[k - 1];
    this.inventory[i] = s;
  }
  take(item: u8): void {
    for (let i = 0; i < this.inventory.length; i++) {
      if (this.inventory[i].item == item) {
        if (--this.inventory[i].count == 0) this.inventory.splice(i, 1);
        return;
      }
    }
    abortWith(ERR_NO_ITEM, "no item " + item.toString() + " in the inventory");
  }
}

// Terrain: a deterministic integer hash decides each column's surface.
function hash2(a: i32, b: i32): u32 {
  let h = <u32>a * 374761393 + <u32>b * 668265263;
  h = (h ^ (h >> 13)) * 1274126177;
  return h ^ (h >> 16);
}

function surface(x: i32, y: i32): i32 {
  return 6 + <i32>(hash2(x >> 3, y >> 3) & 3);
}

function terrain(x: i32, y: i32, z: i32, s: i32): u8 {
  if (z == 0) return BEDROCK;
  if (z > s) return AIR;
  if (z == s) return hash2((x >> 2) + 1000, y >> 2) % 7 == 0 ? SAND : GRASS;
  if (z >= s - 2) return DIRT;
  return STONE;
}

function inWorld(x: i32, y: i32, z: i32): bool {
  return x >= 0 && x < SIZE_X && y >= 0 && y < SIZE_Y && z >= 0 && z < SIZE_Z;
}

function isCrop(b: u8): bool {
  return b >= WHEAT_0 && b <= WHEAT_RIPE;
}

// World caches the chunks a call touches and writes back the changed ones.
// A chunk that is not stored is read voxel by voxel from the terrain
// function and generated whole only when something in it changes.
class World {
  chunks: Array<Uint8Array | null> = new Array<Uint8Array | null>(CX * CY * CZ);
  // 0: not looked up, 1: not stored (terrain), 2: in chunks[i]
  state: Uint8Array = new Uint8Array(CX * CY * CZ);
  dirty: Uint8Array = new Uint8Array(CX * CY * CZ);

  // lookup loads chunk i from storage if it is stored and returns its
  // state.
  lookup(i: i32): u8 {
    const st = this.state[i];
    if (st != 0) return st;
    const cx = i % CX;
    const cy = (i / CX) % CY;
    const cz = i / (CX * CY);
    const buf = new Uint8Array(CHUNK_HEADER + CHUNK_VOXELS);
    const n = getInto(Address.derive("mchk", <u32>cx, <u32>cy, <u32>cz), CHUNK_TYPE, buf);
    if (n < 0) {
      this.state[i] = 1;
      return 1;
    }
    if (n != CHUNK_HEADER + CHUNK_VOXELS || buf[0] != 0x80 || buf[1] != 0x20) {
      abortWith(ERR_BAD_CHUNK, "chunk " + cx.toString() + "," + cy.toString() + "," + cz.toString() + " is corrupt");
    }
    this.chunks[i] = buf;
    this.state[i] = 2;
    return 2;
  }

  // chunk returns chunk i's voxels, generating them if it is not stored.
  chunk(i: i32): Uint8Array {
    if (this.lookup(i) == 1) {
      const buf = new Uint8Array(CHUNK_HEADER + CHUNK_VOXELS);
      generate(buf, i % CX, (i / CX) % CY, i / (CX * CY));
      this.chunks[i] = buf;
      this.state[i] = 2;
    }
    return this.chunks[i]!;
  }

  get(x: i32, y: i32, z: i32): u8 {
    if (!inWorld(x, y, z)) return BEDROCK;
    const i = chunkIndex(x, y, z);
    if (this.lookup(i) == 1) return terrain(x, y, z, surface(x, y));
    return this.chunks[i]![voxelIndex(x, y, z)];
  }

  set(x: i32, y: i32, z: i32, b: u8): void {
    const i = chunkIndex(x, y, z);
    this.chunk(i)[voxelIndex(x, y, z)] = b;
    this.dirty[i] = 1;
  }

  flush(): void {
    for (let i = 0; i < CX * CY * CZ; i++) {
      if (this.dirty[i] == 0) continue;
      putRaw(Address.derive("mchk", <u32>(i % CX), <u32>((i / CX) % CY), <u32>(i / (CX * CY))), CHUNK_TYPE, this.chunks[i]!);
    }
  }
}

function chunkIndex(x: i32, y: i32, z: i32): i32 {
  return ((z / CHUNK) * CY + y / CHUNK) * CX + x / CHUNK;
}

function voxelIndex(x: i32, y: i32, z: i32): i32 {
  return CHUNK_HEADER + (((z % CHUNK) * CHUNK + (y % CHUNK)) * CHUNK + (x % CHUNK));
}

function generate(buf: Uint8Array, cx: i32, cy: i32, cz: i32): void {
  buf[0] = 0x80;
  buf[1] = 0x20;
  for (let ly = 0; ly < CHUNK; ly++) {
    for (let lx = 0; lx < CHUNK; lx++) {
      const x = cx * CHUNK + lx;
      const y = cy * CHUNK + ly;
      const s = surface(x, y);
      for (let lz = 0; lz < CHUNK; lz++) {
        buf[CHUNK_HEADER + ((lz * CHUNK + ly) * CHUNK + lx)] = terrain(x, y, cz * CHUNK + lz, s);
      }
    }
  }
}

function land(): Land {
  const l = tryBorrowGlobal<Land>(Address.channel());
  if (l === null) {
    abortWith(ERR_NO_LAND, "land not initialised");
    return new Land();
  }
  return l;
}

function schedule(): Schedule {
  const s = tryBorrowGlobal<Schedule>(Address.channel());
  return s === null ? new Schedule() : s;
}

function player(a: Address): Player {
  const p = tryBorrowGlobal<Player>(a);
  if (p === null) {
    abortWith(ERR_NOT_PLAYER, "not a player: " + a.toHex());
    return new Player();
  }
  return p;
}

function readPos(r: Reader): Pos {
  const p = new Pos();
  p.decode(r);
  if (!inWorld(p.x, p.y, p.z)) {
    abortWith(ERR_OUT_OF_WORLD, "position " + p.x.toString() + "," + p.y.toString() + "," + p.z.toString() + " is outside the land");
  }
  return p;
}

function within(a: i32, b: i32): bool {
  const d = a - b;
  return d >= -REACH && d <= REACH;
}

function position(a: Address): Pos {
  const p = tryBorrowGlobal<Pos>(a);
  return p === null ? new Pos() : p;
}

function checkReach(me: Address, at: Pos): void {
  const p = position(me);
  if (!within(p.x, at.x) || !within(p.y, at.y) || !within(p.z, at.z)) {
    abortWith(ERR_TOO_FAR, "out of reach (" + REACH.toString() + " voxels)");
  }
}

function blockEvent(type: string, who: Address, at: Pos, b: u8): void {
  const w = new Writer(32).address(who);
  at.encode(w);
  emit(type, w.u8(b).finish());
}

// init creates the land. Its input is ignored.
export function init(len: i32): i32 {
  if (!exists<Land>(Address.channel())) putGlobal<Land>(Address.channel(), new Land());
  return 0;
}

function addPlayer(me: Address, name: string): void {
  const l = land();
  if (l.players >= MAX_PLAYERS) abortWith(ERR_FULL, "the land is full");
  const p = new Player();
  p.name = name;
  // Spawn on the surface near the centre, spread by join order: the first
  // 256 on a 16×16 square from the centre, each next 256 on the square
  // beside it, so 1024 players stand on 1024 columns.
  const world = new World();
  const quad = <i32>(l.players / 256);
  const x = SIZE_X / 2 + <i32>(l.players % 16) - (quad & 1) * 16;
  const y = SIZE_Y / 2 + <i32>((l.players / 16) % 16) - (quad >> 1) * 16;
  let z = SIZE_Z - 1;
  while (z > 0 && world.get(x, y, z - 1) == AIR) z--;
  const pos = Pos.of(x, y, z);
  p.give(DIRT, 16);
  p.give(SAND, 8);
  p.give(WOOD, 8);
  p.give(SEEDS, 8);
  putGlobal<Player>(me, p);
  putGlobal<Pos>(me, pos);
  l.players++;
  putGlobal<Land>(Address.channel(), l);
  const w = new Writer(64).address(me).string(name);
  pos.encode(w);
  emit("movecraft::Joined", w.finish());
}

function removePlayer(me: Address): void {
  delRaw(me, "movecraft::Player");
  delRaw(me, "movecraft::Position");
  const l = land();
  l.players--;
  putGlobal<Land>(Address.channel(), l);
  const s = schedule();
  const before = s.moving.length;
  s.removeMover(me);
  if (s.moving.length != before) putGlobal<Schedule>(Address.channel(), s);
  emit("movecraft::Left", new Writer(16).address(me).finish());
}

// join(name: string) spawns the sender with a starter inventory.
export function join(len: i32): i32 {
  const r = input(len);
  const name = r.string(MAX_NAME);
  r.finish();
  const me = sender();
  if (exists<Player>(me)) abortWith(ERR_ALREADY_JOINED, "already joined: " + me.toHex());
  addPlayer(me, name);
  return 0;
}

// on_join spawns a member that joined the channel, if not yet a player.
export function on_join(len: i32): i32 {
  const me = sender();
  if (!exists<Player>(me)) addPlayer(me, "");
  return 0;
}

// leave() removes the sender and emits scraft::Leave.
export function leave(len: i32): i32 {
  const r = input(len);
  r.finish();
  const me = sender();
  if (!exists<Player>(me)) abortWith(ERR_NOT_PLAYER, "not a player: " + me.toHex());
  removePlayer(me);
  emitLeave(me);
  return 0;
}

// on_leave removes a member that left the channel, if a player.
export function on_leave(len: i32): i32 {
  const me = sender();
  if (exists<Player>(me)) removePlayer(me);
  return 0;
}

// move(x: u16, y: u16, z: u16) sets the sender's walk target; on_tick
// moves the player one voxel per axis per tick until it arrives or a solid
// block is in the way.
export function move(len: i32): i32 {
  const r = input(len);
  const to = readPos(r);
  r.finish();
  const me = sender();
  player(me);
  const s = schedule();
  s.removeMover(me);
  const m = new Mover();
  m.player = me;
  m.target = to;
  s.moving.push(m);
  putGlobal<Schedule>(Address.channel(), s);
  return 0;
}

// place(x: u16, y: u16, z: u16, item: u8) puts an item from the inventory
// into an empty voxel within reach. Seeds need dirt or grass below and
// grow; sand with air below falls.
export function place(len: i32): i32 {
  const r = input(len);
  const at = readPos(r);
  const item = r.u8();
  r.finish();
  const me = sender();
  const p = player(me);
  checkReach(me, at);
  const world = new World();
  if (world.get(at.x, at.y, at.z) != AIR) abortWith(ERR_OCCUPIED, "voxel is not empty");
  let block = item;
  const s = schedule();
  let sched = false;
  if (item == SEEDS) {
    const below = world.get(at.x, at.y, at.z - 1);
    if (below != DIRT && below != GRASS) abortWith(ERR_NOT_PLACEABLE, "seeds need dirt or grass below");
    if (s.crops.length >= MAX_CROPS) abortWith(ERR_FULL, "too many crops");
    block = WHEAT_0;
    const c = new Crop();
    c.pos = at;
    s.crops.push(c);
    sched = true;
  } else if (item != STONE && item != DIRT && item != GRASS && item != SAND && item != WOOD) {
    abortWith(ERR_NOT_PLACEABLE, "item " + item.toString() + " cannot be placed");
  }
  p.take(item);
  world.set(at.x, at.y, at.z, block);
  if (block == SAND && world.get(at.x, at.y, at.z - 1) == AIR) {
    s.addFalling(at);
    sched = true;
  }
  world.flush();
  putGlobal<Player>(me, p);
  if (sched) putGlobal<Schedule>(Address.channel(), s);
  blockEvent("movecraft::Placed", me, at, block);
  return 0;
}

// break_block(x: u16, y: u16, z: u16) digs out a voxel within reach into
// the inventory (grass gives dirt, ripe wheat gives wheat and two seeds,
// an unripe crop gives its seed back). Sand above starts to fall.
export function break_block(len: i32): i32 {
  const r = input(len);
  const at = readPos(r);
  r.finish();
  const me = sender();
  const p = player(me);
  checkReach(me, at);
  const world = new World();
  const b = world.get(at.x, at.y, at.z);
  if (b == AIR || b == BEDROCK) abortWith(ERR_UNBREAKABLE, b == AIR ? "nothing to break" : "bedrock cannot be broken");
  const s = schedule();
  let sched = false;
  if (b == WHEAT_RIPE) {
    p.give(WHEAT, 1);
    p.give(SEEDS, 2);
  } else if (isCrop(b)) {
    s.removeCrop(at);
    sched = true;
    p.give(SEEDS, 1);
  } else if (b == GRASS) {
    p.give(DIRT, 1);
  } else {
    p.give(b, 1);
  }
  world.set(at.x, at.y, at.z, AIR);
  if (at.z + 1 < SIZE_Z && world.get(at.x, at.y, at.z + 1) == SAND) {
    s.addFalling(Pos.of(at.x, at.y, at.z + 1));
    sched = true;
  }
  world.flush();
  putGlobal<Player>(me, p);
  if (sched) putGlobal<Schedule>(Address.channel(), s);
  blockEvent("movecraft::Broken", me, at, b);
  return 0;
}

// block_at(x: u16, y: u16, z: u16) outputs the voxel's block (u8).
export function block_at(len: i32): i32 {
  const r = input(len);
  const at = readPos(r);
  r.finish();
  output(new Writer(1).u8(new World().get(at.x, at.y, at.z)).finish());
  return 0;
}

// get_chunk(cx: u16, cy: u16, cz: u16) outputs the chunk's voxels (bytes,
// 4096), generated or stored.
export function get_chunk(len: i32): i32 {
  const r = input(len);
  const cx = <i32>r.u16();
  const cy = <i32>r.u16();
  const cz = <i32>r.u16();
  r.finish();
  if (cx >= CX || cy >= CY || cz >= CZ) abortWith(ERR_OUT_OF_WORLD, "no such chunk");
  output(new World().chunk((cz * CY + cy) * CX + cx));
  return 0;
}

function passable(b: u8): bool {
  return b == AIR || isCrop(b);
}

function step(from: i32, to: i32): i32 {
  return from < to ? from + 1 : from > to ? from - 1 : from;
}

// on_tick advances what the schedule lists: each falling sand block drops
// one voxel, each crop ages (a stage every 10 ticks, ripe at the fourth),
// each moving player steps one voxel per axis toward its target, climbing
// one voxel when the way is blocked and stopping when it cannot. The cost is
// proportional to those lists and the chunks they touch; the input is
// ignored.
export function on_tick(len: i32): i32 {
  const s = schedule();
  if (s.isEmpty()) return 0;
  const world = new World();

  // Falling sand. A block that lands leaves the list; sand resting on a
  // falling block follows it.
  const falling = s.falling;
  s.falling = [];
  for (let i = 0; i < falling.length; i++) {
    const f = falling[i];
    if (world.get(f.x, f.y, f.z) != SAND) continue;
    if (f.z > 0 && world.get(f.x, f.y, f.z - 1) == AIR) {
      world.set(f.x, f.y, f.z, AIR);
      world.set(f.x, f.y, f.z - 1, SAND);
      if (f.z + 1 < SIZE_Z && world.get(f.x, f.y, f.z + 1) == SAND) s.addFalling(Pos.of(f.x, f.y, f.z + 1));
      if (f.z - 1 > 0 && world.get(f.x, f.y, f.z - 2) == AIR) s.addFalling(Pos.of(f.x, f.y, f.z - 1));
    }
  }

  // Crops. A crop that was broken or replaced leaves the list.
  const crops = s.crops;
  s.crops = [];
  for (let i = 0; i < crops.length; i++) {
    const c = crops[i];
    const b = world.get(c.pos.x, c.pos.y, c.pos.z);
    if (!isCrop(b)) continue;
    c.age++;
    if (c.age % GROW_TICKS == 0) {
      world.set(c.pos.x, c.pos.y, c.pos.z, b + 1);
      if (b + 1 == WHEAT_RIPE) continue;
    }
    s.crops.push(c);
  }

  // Moving players. A step reads and writes the player's 6-byte Position
  // through one buffer, in place: with hundreds of players walking, an
  // object, a reader and a writer per step would be most of the tick's
  // memory, and a tick that outgrows the initial memory is slow.
  const moving = s.moving;
  const buf = new Uint8Array(POS_LEN);
  let kept = 0;
  for (let i = 0; i < moving.length; i++) {
    const m = moving[i];
    const n = getInto(m.player, POS_TYPE, buf);
    if (n < 0) continue; // left
    if (n != POS_LEN) abortWith(ERR_BAD_INPUT, "corrupt position of " + m.player.toHex());
    const px = <i32>load<u16>(buf.dataStart);
    const py = <i32>load<u16>(buf.dataStart + 2);
    const pz = <i32>load<u16>(buf.dataStart + 4);
    let nx = step(px, m.target.x);
    let ny = step(py, m.target.y);
    let nz = step(pz, m.target.z);
    if (!passable(world.get(nx, ny, nz))) {
      nx = px;
      ny = py;
      nz = pz + 1;
      if (!passable(world.get(nx, ny, nz))) continue; // stuck: stop here
    }
    store<u16>(buf.dataStart, <u16>nx);
    store<u16>(buf.dataStart + 2, <u16>ny);
    store<u16>(buf.dataStart + 4, <u16>nz);
    putRaw(m.player, POS_TYPE, buf);
    if (nx != m.target.x || ny != m.target.y || nz != m.target.z) moving[kept++] = m;
  }
  moving.length = kept;
  s.moving = moving;

  world.flush();
  // Sized up front: a writer that doubles from its default would copy the
  // schedule of hundreds of players several times.
  const w = new Writer(16 + s.crops.length * 10 + s.falling.length * 6 + s.moving.length * 22);
  s.encode(w);
  putRaw(Address.channel(), s.typeName(), w.finish());
  return 0;
}
