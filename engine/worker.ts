/** Entry of a runtime worker thread: loads the product module and runs a ThreadNode. */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { realClock } from './clock.ts';
import { closeStores, loadProduct } from './runtime.ts';
import { ThreadNode, type Control, type Link } from './thread.ts';

interface Init {
  thread: number;
  workers: number;
  shards: number;
  productModule: string;
  config: Record<string, unknown>;
  ports: Record<number, MessagePort>;
  /** Cluster mode: this node's id (the worker routes by the host's placement view). */
  clusterNodeId?: string;
}

async function main(): Promise<void> {
  const parent = parentPort!;
  const init = workerData as Init;
  try {
    const product = await loadProduct(init.productModule);
    const stores = await product.openStores(init.config);
    const links = new Map<number, Link>();
    links.set(0, { post: (c) => parent.postMessage(c) });
    const node = new ThreadNode({
      thread: init.thread,
      workers: init.workers,
      shards: init.shards,
      clock: realClock,
      stores,
      links,
      reminderControl: (c) => parent.postMessage(c),
      clusterNodeId: init.clusterNodeId,
    });
    product.registerKinds(node, init.config);
    const onControl = async (c: Control): Promise<void> => {
      switch (c.c) {
        case 'batch':
          node.receiveBatch(c.data);
          return;
        case 'metrics':
          parent.postMessage({ c: 'metricsReply', id: c.id, m: node.metrics() } satisfies Control);
          return;
        case 'placement':
          node.setPlacement(c.view);
          return;
        case 'endpointsGone':
          node.endpointsGone(c.node);
          return;
        case 'release':
          await node.releaseShard(c.shard);
          parent.postMessage({ c: 'released', id: c.id } satisfies Control);
          return;
        case 'drain':
          await node.drain();
          await closeStores(stores);
          parent.postMessage({ c: 'drained' } satisfies Control);
          return;
      }
    };
    for (const [j, port] of Object.entries(init.ports)) {
      links.set(Number(j), { post: (c) => port.postMessage(c) });
      port.on('message', (c: Control) => void onControl(c));
    }
    parent.on('message', (c: Control) => void onControl(c));
    parent.postMessage({ c: 'ready' } satisfies Control);
  } catch (err) {
    parent.postMessage({
      c: 'failed',
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    } satisfies Control);
  }
}

void main();
