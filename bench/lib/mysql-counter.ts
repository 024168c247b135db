import { createServer, connect, type Server, type Socket } from 'node:net'
import { databaseUrl, parseMysqlUrl } from '../../src/db/connection.js'

/** Commands a server's pools sent MySQL, by kind, since the counter started. */
export interface MysqlCommands {
  /** COM_QUERY and COM_STMT_EXECUTE: what MySQL's `Questions` status counts. */
  statements: number
  /** Every command packet: statements, prepares, closes, pings, ... */
  commands: number
}

export interface MysqlCounter {
  /** MYSQL_URL for the measured server: the same database, reached through the counter. */
  url: string
  counts: () => MysqlCommands
  close: () => Promise<void>
}

const COM_QUERY = 0x03
const COM_STMT_EXECUTE = 0x17

/**
 * A TCP relay in front of MySQL that counts the commands crossing it, so statements per request
 * are measured for one server's pools alone, even when the MySQL server is shared with other
 * work (its global `Questions` counts everyone). It reads only the packet headers of the
 * client's side of the protocol: a command is a packet with sequence number 0, its first payload
 * byte the command. The relay adds a hop to every query; the measured server sees MySQL a little
 * slower than it is.
 */
export async function startMysqlCounter(mysqlUrl: string): Promise<MysqlCounter> {
  const { hostname, port } = new URL(parseMysqlUrl(mysqlUrl).serverUrl)
  const target = { host: hostname, port: Number(port || 3306) }
  const counts: MysqlCommands = { statements: 0, commands: 0 }
  const sockets = new Set<Socket>()

  const server: Server = createServer((client) => {
    const upstream = connect(target)
    sockets.add(client).add(upstream)
    // Packets may split or merge across chunks: only the bytes still owed to the current packet
    // and a partial header are carried over.
    let owed = 0
    let header = Buffer.alloc(0)
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk)
      let at = 0
      while (at < chunk.length) {
        if (owed > 0) {
          const skip = Math.min(owed, chunk.length - at)
          owed -= skip
          at += skip
          continue
        }
        const need = 5 - header.length
        header = Buffer.concat([header, chunk.subarray(at, at + need)])
        at += Math.min(need, chunk.length - at)
        if (header.length < 5) break
        const length = header.readUIntLE(0, 3)
        if (header[3] === 0) {
          counts.commands++
          if (header[4] === COM_QUERY || header[4] === COM_STMT_EXECUTE) counts.statements++
        }
        owed = length - 1
        header = Buffer.alloc(0)
      }
    })
    upstream.on('data', (chunk) => client.write(chunk))
    const close = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    for (const socket of [client, upstream]) {
      socket.on('error', close)
      socket.on('close', close)
    }
  })
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  const address = server.address()
  const relayPort = typeof address === 'object' && address ? address.port : 0
  const relayed = new URL(mysqlUrl)
  relayed.hostname = '127.0.0.1'
  relayed.port = String(relayPort)
  return {
    url: databaseUrl(relayed.toString(), parseMysqlUrl(mysqlUrl).database),
    counts: () => ({ ...counts }),
    close: async () => {
      sockets.forEach((socket) => socket.destroy())
      await new Promise<void>((done) => server.close(() => done()))
    },
  }
}
