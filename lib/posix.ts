// posix-multiprocessing/posix: the kernel objects, thin and by name.
export { listKernelObjects, type KernelObjects } from './posix/inventory.js';
export { MessageQueue, type MessageQueueOptions, type SendOptions, type WaitOptions, type Message, type MessageData } from './posix/mqueue.js';
export { mqueueSetting, queueBytes } from './posix/limits.js';
