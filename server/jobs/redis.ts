import { Redis, type RedisOptions } from "ioredis";
import { JobError } from "./errors.js";

/**
 * Redis connections of one coordinator or worker, all ioredis clients, closed together.
 *
 * BullMQ takes an ioredis instance as its `connection`. A Queue uses the instance it is handed and leaves it
 * open on close; a Worker duplicates it (one connection for commands, one for its blocking fetch), closes its
 * duplicates itself and leaves the original alone. So whoever opens a client here closes it here (`close()`).
 * Every client is created with `lazyConnect`, so the original handed to a Worker never opens a socket.
 */

/** Checks a queue URL (`redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS). */
export function checkRedisUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    throw new JobError("invalid_argument", `not a URL: ${url}`, { cause: e });
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") throw new JobError("invalid_argument", `expected redis://host:port[/db], got ${url}`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new JobError("invalid_argument", `bad database number in ${url}`);
  return url;
}

/** The URL without its password, for messages. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}

/** QUIT waits for the reply; a server that went away must not hold up shutdown past this. */
const QUIT_TIMEOUT_MS = 2000;

async function closeClient(c: Redis): Promise<void> {
  if (c.status !== "ready") {
    c.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      c.quit(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
      }),
    ]);
  } catch {
    // Closed under us: nothing left to do but make sure.
  } finally {
    clearTimeout(timer);
    c.disconnect();
  }
}

export class RedisConnections {
  private readonly clients: Redis[] = [];
  /** Connection errors after start (redis going away); ioredis and BullMQ reconnect by themselves. */
  lastError: Error | undefined;

  constructor(readonly url: string) {
    checkRedisUrl(url);
  }

  private open(options: RedisOptions): Redis {
    const client = new Redis(this.url, { lazyConnect: true, ...options });
    // Without a listener ioredis prints every reconnect failure as an unhandled error event.
    client.on("error", (e: Error) => {
      this.lastError = e;
    });
    this.clients.push(client);
    return client;
  }

  /**
   * A client for a BullMQ Queue or Worker. `maxRetriesPerRequest: null` is what BullMQ requires of a Worker's
   * (blocking) connections, which it duplicates from this one: commands wait through a reconnect instead of
   * failing after 20 tries.
   */
  bull(): Redis {
    return this.open({ maxRetriesPerRequest: null });
  }

  /** A connected client for vemscope's own keys (done sets, dead letters); JobError "queue" if redis is unreachable. */
  async command(): Promise<RedisCommands> {
    const client = this.open({});
    let failure: Error | undefined;
    const onError = (e: Error): void => {
      failure ??= e;
    };
    client.on("error", onError);
    try {
      await client.connect();
    } catch (e) {
      // connect() rejects with "Connection is closed."; the reason (ECONNREFUSED, ...) came as an error event.
      const reason = failure ?? (e as Error);
      this.clients.splice(this.clients.indexOf(client), 1);
      client.disconnect();
      throw new JobError("queue", `cannot reach redis at ${redactRedisUrl(this.url)}: ${reason.message}`, { cause: reason });
    } finally {
      client.off("error", onError);
    }
    return new RedisCommands(client);
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.splice(0).map(closeClient));
  }
}

/** The handful of commands the job system issues itself, typed, their failures as JobError "queue". */
export class RedisCommands {
  constructor(private readonly client: Redis) {}

  private async run<T>(cmd: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      throw new JobError("queue", `redis ${cmd} failed: ${(e as Error).message}`, { cause: e });
    }
  }

  async sadd(key: string, ...members: string[]): Promise<void> {
    if (members.length) await this.run("SADD", () => this.client.sadd(key, ...members));
  }
  async srem(key: string, ...members: string[]): Promise<void> {
    if (members.length) await this.run("SREM", () => this.client.srem(key, ...members));
  }
  async smembers(key: string): Promise<string[]> {
    return this.run("SMEMBERS", () => this.client.smembers(key));
  }
  async scard(key: string): Promise<number> {
    return this.run("SCARD", () => this.client.scard(key));
  }
  async hset(key: string, field: string, value: string): Promise<void> {
    await this.run("HSET", () => this.client.hset(key, field, value));
  }
  async hdel(key: string, ...fields: string[]): Promise<void> {
    if (fields.length) await this.run("HDEL", () => this.client.hdel(key, ...fields));
  }
  async hlen(key: string): Promise<number> {
    return this.run("HLEN", () => this.client.hlen(key));
  }
  async hvals(key: string): Promise<string[]> {
    return this.run("HVALS", () => this.client.hvals(key));
  }
  async hkeys(key: string): Promise<string[]> {
    return this.run("HKEYS", () => this.client.hkeys(key));
  }
  async del(...keys: string[]): Promise<void> {
    if (keys.length) await this.run("DEL", () => this.client.del(...keys));
  }
}
