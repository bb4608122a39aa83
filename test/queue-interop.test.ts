// The default codec on the wire: an object that fits one message is exactly
// CPython's pickle.dumps(obj, 4), read and written by a Python process with
// ctypes on librt, by the queue's name; and a queue pickled for another
// process opens the same kernel objects there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JoinableQueue, Queue, SimpleQueue, dumps, loads } from '../lib/index.js';
import { MessageQueue } from '../lib/posix.js';
import { python, testName } from './helpers.js';

const CTYPES = `
import ctypes, os, pickle
rt = ctypes.CDLL('librt.so.1', use_errno=True)
rt.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
rt.mq_receive.restype = ctypes.c_ssize_t
rt.mq_receive.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p]
rt.mq_send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint]
def receive(mqd):
    buffer = ctypes.create_string_buffer(8192)
    length = rt.mq_receive(mqd, buffer, 8192, None)
    assert length >= 0, os.strerror(ctypes.get_errno())
    return buffer.raw[:length]
def send(mqd, data):
    assert rt.mq_send(mqd, data, len(data), 0) == 0, os.strerror(ctypes.get_errno())
`;

test('a named queue carries exactly pickle.dumps(obj, 4), both ways', (t) => {
  const name = testName('pickled');
  const queue = new Queue<unknown>(0, { name });
  t.after(() => { queue.close(); Queue.unlink(name); });
  queue.put({ a: 1, b: [1, 2], c: 'caf\u00e9' });
  queue.put(null);
  const kernel = new MessageQueue(name);
  t.after(() => kernel.close());
  while (kernel.currentMessages < 2) { /* the feeder hands them over in a moment */ }
  const output = python(`${CTYPES}
mqd = rt.mq_open(${JSON.stringify(name)}.encode(), os.O_RDWR)
first, second = receive(mqd), receive(mqd)
print(first == pickle.dumps({'a': 1, 'b': [1, 2], 'c': 'caf\\u00e9'}, 4), second == pickle.dumps(None, 4))
send(mqd, pickle.dumps({'from': 'python', 'n': [1.5, None, True]}))
`);
  assert.equal(output.trim(), 'True True');
  // A Python dict reads back as a Map (pickle's Dict).
  const received = queue.get(true, 5) as Map<string, unknown>;
  assert.equal(received.get('from'), 'python');
  assert.deepEqual(received.get('n'), [1.5, null, true]);
});

test('a pickled queue (as in Process args) opens the same kernel queue and keeps its kind and codec', (t) => {
  for (const queue of [new Queue<number>(0, { codec: 'json' }), new JoinableQueue<number>(), new SimpleQueue<number>()]) {
    // Pickled, so close() leaves it to the other side: remove it here rather than at exit.
    t.after(() => { queue.close(); queue.unlink(); });
    const copy = loads(dumps(queue)) as Queue<number>;
    t.after(() => copy.close());
    assert.equal(copy.constructor, queue.constructor);
    assert.equal(copy.name, queue.name);
    copy.put(42);
    assert.equal(queue.get(true, 5), 42);
    assert.equal(queue.qsize(), 0);
  }
  const custom = new Queue(0, { codec: { encode: () => new Uint8Array(), decode: () => 0 } });
  t.after(() => custom.close());
  assert.throws(() => dumps(custom), /custom codec/);
});
