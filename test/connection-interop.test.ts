// Listener and Client: Unix (path, abstract) and TCP sockets, and CPython
// itself on the other end, with both authkey handshakes byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { Client, ClientAsync, Listener, Pipe, authenticateClient, authenticateClientAsync, type Address } from '../lib/connection.js';
import { AuthenticationError, ValueError } from '../lib/errors.js';
import { finished } from './helpers.js';

const KEY = Buffer.from('secret key');

/** CPython interpreters on this machine: python3 (3.11) always, 3.12+ where pyenv has them. */
const pythons = ['python3', ...['3.12.1/bin/python3.12', '3.13.0/bin/python3.13']
  .map((path) => `${process.env.HOME}/.pyenv/versions/${path}`).filter((path) => existsSync(path))];

function py(python: string, code: string) {
  return spawn(python, ['-c', code], { stdio: ['pipe', 'pipe', 'pipe'] });
}

function firstLine(child: ReturnType<typeof py>): Promise<string> {
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`python exited with ${code} before printing`)));
  });
}

/** A Python literal for a Node address. */
function pyAddress(address: Address): string {
  return typeof address === 'string' ? JSON.stringify(address) : `(${JSON.stringify(address[0])}, ${address[1]})`;
}

test('Unix Listener: default path in an owner-only directory, unlinked on close; last_accepted', async () => {
  const listener = new Listener();
  const path = listener.address as string;
  assert.match(path, /\/listener-[0-9a-f]+$/);
  assert.equal(statSync(dirname(path)).mode & 0o777, 0o700);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(listener.last_accepted, null);
  const client = await Promise.all([listener.acceptAsync(), ClientAsync(path)]);
  assert.equal(listener.last_accepted, '');
  client[1].send_bytes(Buffer.from('ping'));
  assert.deepEqual(client[0].recv_bytes(), Buffer.from('ping'));
  client.forEach((c) => c.close());
  listener.close();
  listener.close();
  assert.equal(existsSync(path), false);
  assert.throws(() => listener.accept(), { name: 'OSError', message: 'listener is closed' });
  await assert.rejects(listener.acceptAsync(), { message: 'listener is closed' });
});

test('abstract Unix and TCP listeners; the synchronous accept and Client', async () => {
  for (const address of [`\0pmp-test-${process.pid}`, ['127.0.0.1', 0]] as Address[]) {
    using listener = new Listener(address, { backlog: 4 });
    if (typeof address === 'string') assert.equal(listener.address, address);
    else assert.deepEqual([(listener.address as [string, number])[0], typeof (listener.address as [string, number])[1]], ['127.0.0.1', 'number']);
    using client = Client(listener.address);
    using server = listener.accept();
    if (typeof address !== 'string') {
      assert.equal((listener.last_accepted as [string, number])[0], '127.0.0.1');
      assert.equal(listener.lastAccepted, listener.last_accepted);
    }
    server.send_bytes(Buffer.from('over ' + typeof address));
    assert.equal(client.recv_bytes().toString(), 'over ' + typeof address);
  }
  using tcp = new Listener(null, { family: 'AF_INET' });
  assert.equal((tcp.address as [string, number])[0], '127.0.0.1');
});

test('address and argument errors are CPython\'s', async () => {
  using listener = new Listener(['127.0.0.1', 0]);
  assert.throws(() => new Listener(listener.address), { code: 'EADDRINUSE', errno: 98 });
  assert.throws(() => Client('/nonexistent/pmp-socket'), { name: 'FileNotFoundError', code: 'ENOENT' });
  const port = (listener.address as [string, number])[1];
  listener.close();
  assert.throws(() => Client(['127.0.0.1', port]), { name: 'ConnectionRefusedError', code: 'ECONNREFUSED' });
  await assert.rejects(ClientAsync(['127.0.0.1', port]), { code: 'ECONNREFUSED' });
  await assert.rejects(ClientAsync('/nonexistent/pmp-socket'), { code: 'ENOENT' });
  assert.throws(() => new Listener('\\\\.\\pipe\\test'), (error: Error) => error instanceof ValueError && error.message === 'Family AF_PIPE is not recognized.');
  assert.throws(() => Client(123 as never), { message: 'address type of 123 unrecognized' });
  assert.throws(() => new Listener(null, { authkey: 'text' as never }), { name: 'TypeError', message: 'authkey should be a byte string' });
});

test('acceptAsync and ClientAsync honour timeout and signal', async () => {
  using listener = new Listener();
  await assert.rejects(listener.acceptAsync({ timeout: 0.05 }), { name: 'TimeoutError' });
  const controller = new AbortController();
  const pending = listener.acceptAsync({ signal: controller.signal });
  controller.abort();
  await assert.rejects(pending, { name: 'AbortError' });
  const closing = listener.acceptAsync();
  listener.close();
  await assert.rejects(closing, { message: 'listener is closed' });
});

test('Node Listener and Node Client authenticate with the 3.12+ form; a wrong key fails on both sides', async () => {
  using listener = new Listener(null, { authkey: KEY });
  const [server, client] = await Promise.all([listener.acceptAsync(), ClientAsync(listener.address, { authkey: KEY })]);
  client.send_bytes(Buffer.from('authenticated'));
  assert.deepEqual(server.recv_bytes(), Buffer.from('authenticated'));
  server.close();
  client.close();
  const results = await Promise.allSettled([listener.acceptAsync(), ClientAsync(listener.address, { authkey: Buffer.from('wrong') })]);
  assert.deepEqual(results.map((r) => r.status === 'rejected' && r.reason instanceof AuthenticationError && r.reason.message),
    ['digest received was wrong', 'digest sent was rejected']);
});

test('the Listener\'s challenge is CPython 3.12\'s, and it accepts every allowed digest', async () => {
  using listener = new Listener(null, { authkey: KEY });
  for (const [digest, node] of [['sha256', 'sha256'], ['md5', 'md5'], ['sha384', 'sha384'], ['sha3_256', 'sha3-256'], ['', 'md5']]) {
    const accepted = listener.acceptAsync();
    using raw = Client(listener.address);  // no authkey: sees the handshake as messages
    const challenge = await raw.recvBytesAsync();
    assert.equal(challenge.length, 11 + 8 + 40);
    assert.equal(challenge.subarray(0, 19).toString(), '#CHALLENGE#{sha256}');
    const mac = createHmac(node, KEY).update(challenge.subarray(11)).digest();
    raw.send_bytes(digest ? Buffer.concat([Buffer.from(`{${digest}}`), mac]) : mac);
    assert.equal((await raw.recvBytesAsync()).toString(), '#WELCOME#');
    // Then the Listener answers a 3.11 (20-byte) challenge with a raw HMAC-MD5.
    const mine = Buffer.alloc(20, 9);
    raw.send_bytes(Buffer.concat([Buffer.from('#CHALLENGE#'), mine]));
    assert.deepEqual(await raw.recvBytesAsync(), createHmac('md5', KEY).update(mine).digest());
    raw.send_bytes(Buffer.from('#WELCOME#'));
    (await accepted).close();
  }
  const accepted = listener.acceptAsync();
  using raw = Client(listener.address);
  await raw.recvBytesAsync();
  raw.send_bytes(Buffer.concat([Buffer.from('{sha256}'), Buffer.alloc(16)]));
  await assert.rejects(accepted, { message: "expected 'sha256' of length 32 got 16" });
  assert.equal((await raw.recvBytesAsync()).toString(), '#FAILURE#');
});

test('a Client with an authkey facing a Listener without one: protocol error, nothing unpickled', async () => {
  using listener = new Listener();
  const client = ClientAsync(listener.address, { authkey: KEY });
  using server = await listener.acceptAsync();
  server.send_bytes(Buffer.from('hello'));
  await assert.rejects(client, { name: 'AuthenticationError', message: "Protocol error, expected challenge: message=b'hello'" });
});

test('a server may authenticate after accepting (as CPython managers do), sync or async', async () => {
  using listener = new Listener();
  const peer = py('python3', `
from multiprocessing.connection import Client
with Client(${pyAddress(listener.address)}, authkey=b'secret key') as conn:
    conn.send_bytes(b'late handshake')
`);
  const done = finished(peer);
  using conn = authenticateClient(listener.accept(), KEY);
  assert.equal(conn.recv_bytes().toString(), 'late handshake');
  assert.equal((await done).code, 0);
  const connecting = ClientAsync(listener.address, { authkey: KEY });
  const server = await authenticateClientAsync(await listener.acceptAsync(), KEY, { timeout: 5 });
  const client = await connecting;
  client.send_bytes(Buffer.from('async'));
  assert.equal(server.recv_bytes().toString(), 'async');
  server.close();
  client.close();
  assert.throws(() => authenticateClient(server, 'key' as never), { message: "Authkey must be bytes, not <class 'str'>" });
});

test('a CPython process at the other end of a Pipe: both directions, one-way and duplex', async () => {
  for (const duplex of [false, true]) {
    const [mine, theirs] = Pipe(duplex);
    const peer = spawn('python3', ['-c', `
from multiprocessing.connection import Connection
conn = Connection(3, readable=${duplex ? 'True' : 'False'})
conn.send({'hello': ('from', 'python'), 'n': 1 << 40})
conn.send_bytes(b'raw')
if conn.readable:
    conn.send(['echo', conn.recv()])
conn.close()
`], { stdio: ['ignore', 'pipe', 'pipe', theirs.fileno()] });
    theirs.close();
    const done = finished(peer);
    const greeting = await mine.recvAsync<Map<string, unknown>>();
    assert.deepEqual([...greeting.get('hello') as string[]], ['from', 'python']);
    assert.equal(greeting.get('n'), 2 ** 40);
    assert.deepEqual(await mine.recvBytesAsync(), Buffer.from('raw'));
    if (duplex) {
      mine.send({ from: 'node' });
      const [tag, echoed] = await mine.recvAsync<[string, Map<string, string>]>();
      assert.deepEqual([tag, echoed.get('from')], ['echo', 'node']);
    }
    await assert.rejects(mine.recvAsync(), { name: 'EOFError' });
    mine.close();
    const { code, stderr } = await done;
    assert.equal(code, 0, stderr);
  }
});

for (const python of pythons) {
  const version = python === 'python3' ? 'python3' : python.split('/').pop()!;

  test(`Node Client talks to a CPython Listener (${version}), with an authkey, both families`, async () => {
    for (const family of ['AF_UNIX', 'AF_INET']) {
      const peer = py(python, `
import json, sys
from multiprocessing.connection import Listener
with Listener(family=${JSON.stringify(family)}, authkey=b'secret key') as listener:
    print(json.dumps(listener.address), flush=True)
    with listener.accept() as conn:
        message = conn.recv_bytes()
        conn.send_bytes(b'python got ' + message)
        obj = conn.recv()
        assert obj == {'numbers': [1, 2.5, 1 << 70], 'text': 'é', 'raw': b'\\x00', 'none': None}, obj
        conn.send(('echo', obj, True))
        print(conn.recv_bytes(256).decode(), flush=True)
`);
      const done = finished(peer);
      const address = JSON.parse(await firstLine(peer)) as Address;
      using conn = Client(address, { authkey: KEY });
      conn.send_bytes(Buffer.from('hi from node'));
      assert.equal(conn.recv_bytes().toString(), 'python got hi from node');
      const sent = { numbers: [1, 2.5, 1n << 70n], text: 'é', raw: Buffer.from([0]), none: null };
      conn.send(sent);
      const [tag, echoed, flag] = conn.recv<[string, Map<string, unknown>, boolean]>();
      assert.deepEqual([tag, Object.fromEntries(echoed), flag], ['echo', sent, true]);
      conn.send_bytes(Buffer.from('bye'));
      const { code, stdout, stderr } = await done;
      assert.equal(code, 0, stderr);
      assert.match(stdout, /\nbye\n$/);
    }
  });

  test(`a CPython Client (${version}) talks to a Node Listener, with an authkey, both families`, async () => {
    for (const address of [null, ['127.0.0.1', 0]] as (Address | null)[]) {
      using listener = new Listener(address, { authkey: KEY });
      const peer = py(python, `
from multiprocessing.connection import Client
with Client(${pyAddress(listener.address)}, authkey=b'secret key') as conn:
    conn.send_bytes(b'hi from python')
    print(conn.recv_bytes().decode())
    conn.send({'from': 'python', 'values': (1, -2, 3.5, None, [b'x'])})
    print(repr(conn.recv()))
`);
      const done = finished(peer);
      using conn = listener.accept();
      assert.equal(conn.recv_bytes().toString(), 'hi from python');
      conn.send_bytes(Buffer.from('node got it'));
      const received = conn.recv<Map<string, unknown>>();
      assert.deepEqual([...received.keys()], ['from', 'values']);
      assert.deepEqual([...received.get('values') as unknown[]], [1, -2, 3.5, null, [Buffer.from('x')]]);
      conn.send([received.get('from'), 42, 'done']);
      const { code, stdout, stderr } = await done;
      assert.equal(code, 0, stderr);
      assert.equal(stdout, "node got it\n['python', 42, 'done']\n");
    }
  });

  test(`a wrong authkey is refused both ways against CPython (${version})`, async () => {
    // CPython Listener, Node Client with the wrong key.
    const peer = py(python, `
import json
from multiprocessing.connection import Listener
from multiprocessing import AuthenticationError
with Listener(authkey=b'secret key') as listener:
    print(json.dumps(listener.address), flush=True)
    try:
        listener.accept()
    except AuthenticationError as e:
        print('python:', e)
`);
    const done = finished(peer);
    const address = JSON.parse(await firstLine(peer)) as Address;
    assert.throws(() => Client(address, { authkey: Buffer.from('wrong') }),
      (error: Error) => error instanceof AuthenticationError && error.message === 'digest sent was rejected');
    assert.match((await done).stdout, /python: digest received was wrong/);

    // Node Listener, CPython Client with the wrong key.
    using listener = new Listener(null, { authkey: KEY });
    const client = py(python, `
from multiprocessing.connection import Client
from multiprocessing import AuthenticationError
try:
    Client(${pyAddress(listener.address)}, authkey=b'wrong')
except AuthenticationError as e:
    print('python:', e)
`);
    const clientDone = finished(client);
    assert.throws(() => listener.accept(), (error: Error) => error instanceof AuthenticationError && error.message === 'digest received was wrong');
    assert.match((await clientDone).stdout, /python: digest sent was rejected/);
  });
}
