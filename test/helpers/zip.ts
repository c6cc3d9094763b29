import yauzl from 'yauzl';

/** Every entry of a ZIP in memory, with whether it was deflated. */
export function unzip(zip: Buffer): Promise<Map<string, { data: Buffer; compressed: boolean }>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(zip, { lazyEntries: true }, (error, archive) => {
      if (error) return reject(error);
      const out = new Map<string, { data: Buffer; compressed: boolean }>();
      archive.on('entry', (entry: yauzl.Entry) => {
        archive.openReadStream(entry, (err, stream) => {
          if (err) return reject(err);
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            out.set(entry.fileName, { data: Buffer.concat(chunks), compressed: entry.compressionMethod === 8 });
            archive.readEntry();
          });
        });
      });
      archive.on('end', () => resolve(out));
      archive.on('error', reject);
      archive.readEntry();
    });
  });
}
