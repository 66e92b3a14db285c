/**
 * A misbehaving DICOM peer (the *other* side of the wire) for the trap tests: it accepts every association
 * and presentation context, then either drops the connection on the first C-FIND / C-MOVE (no final
 * response) or never answers (stall).
 */
import { createServer, type Server, type Socket } from 'node:net';
import dimse from 'dcmjs-dimse';

const { Scp } = dimse;
const { PresentationContextResult, TransferSyntax } = dimse.constants;

export type Misbehaviour = 'close' | 'stall';

export async function startFakePeer(mode: Misbehaviour): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  class FakeScp extends Scp {
    declare socket: Socket;
    override associationRequested(association: dimse.association.Association) {
      for (const { context } of association.getPresentationContexts())
        context.setResult(PresentationContextResult.Accept, TransferSyntax.ImplicitVRLittleEndian);
      this.sendAssociationAccept();
    }
    override associationReleaseRequested() {
      this.sendAssociationReleaseResponse();
    }
    override cFindRequest() {
      if (mode === 'close') this.socket.destroy();
    }
    override cMoveRequest() {
      if (mode === 'close') this.socket.destroy();
    }
  }
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    new FakeScp(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
