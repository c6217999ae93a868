using System.Buffers.Binary;
using System.Text;

namespace Hvr.ReferenceProvider;

/// <summary>One write of a Hyper-V Replica log: <c>Data</c> goes to the virtual disk at <c>ByteOffset</c>.</summary>
public sealed record HrlWrite(long ByteOffset, byte[] Data);

/// <summary>
/// Writes a closed MS-HRL log ([MS-HRL] v6.0): a 4096-byte header, an empty first metadata block at 4096, then for
/// each group of up to 127 entries their data followed by the metadata block describing them. Every integer is
/// little-endian; every checksum is the 32-bit complement of the byte sum of its structure with the checksum field
/// counted as zero; times are seconds since 2000-01-01T00:00:00Z; GUIDs are in the Windows layout.
/// </summary>
public static class HrlWriter
{
    public const int HeaderSize = 4096;
    public const int MetadataSize = 4096;
    public const int EntrySize = 32;
    public const int MetadataHeaderSize = 32;
    public const int EntriesPerBlock = (MetadataSize - MetadataHeaderSize) / EntrySize; // 127
    public const uint FormatVersion = 0x00020000;
    private static readonly DateTime Epoch2000 = new(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    public static uint Seconds(DateTime utc) => (uint)Math.Max(0, (utc - Epoch2000).TotalSeconds);

    /// <summary>~(byte sum), 32-bit.</summary>
    public static uint Checksum(ReadOnlySpan<byte> bytes)
    {
        uint sum = 0;
        foreach (var b in bytes) sum += b;
        return ~sum;
    }

    /// <summary>A 32-byte entry: ByteOffset, Checksum, DataLength, TimeStamp, MetaOperation = 1, DataChecksum, Location = 0.</summary>
    public static byte[] Entry(long byteOffset, uint dataLength, uint timeStamp, uint dataChecksum)
    {
        var e = new byte[EntrySize];
        BinaryPrimitives.WriteInt64LittleEndian(e.AsSpan(0), byteOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(12), dataLength);
        BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(16), timeStamp);
        e[20] = 1; // MetaOperation: write
        BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(21), dataChecksum);
        e[25] = 0; // Location
        BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(8), Checksum(e));
        return e;
    }

    /// <summary>A 32-byte metadata block header: PreviousMetadataLocation, ValidMetadataEntries, Checksum.</summary>
    public static byte[] MetadataHeader(long previousMetadataLocation, uint validEntries)
    {
        var h = new byte[MetadataHeaderSize];
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(0), previousMetadataLocation);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(8), validEntries);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(12), Checksum(h));
        return h;
    }

    /// <summary>The whole log, closed (EOLLocation set), in memory.</summary>
    public static byte[] Write(
        IReadOnlyList<HrlWrite> writes,
        Guid uniqueId,
        Guid previousUniqueId,
        Guid vhd2DataWriteGuid,
        DateTime createdAtUtc)
    {
        foreach (var w in writes)
        {
            if (w.ByteOffset % 512 != 0 || w.Data.Length % 512 != 0)
                throw new ArgumentException($"MS-HRL writes are whole 512-byte sectors; got offset {w.ByteOffset}, length {w.Data.Length}.");
        }
        var time = Seconds(createdAtUtc);
        using var body = new MemoryStream();
        body.Write(new byte[HeaderSize]);
        // Metadata block #1: no entries, PreviousMetadataLocation 0.
        long previousBlock = body.Position;
        body.Write(Block(0, Array.Empty<byte[]>()));
        for (var start = 0; start < writes.Count; start += EntriesPerBlock)
        {
            var group = writes.Skip(start).Take(EntriesPerBlock).ToList();
            var entries = new List<byte[]>();
            foreach (var w in group)
            {
                body.Write(w.Data);
                entries.Add(Entry(w.ByteOffset, (uint)w.Data.Length, time, Checksum(w.Data)));
            }
            long blockAt = body.Position;
            body.Write(Block(blockAt - previousBlock, entries));
            previousBlock = blockAt;
        }
        var log = body.ToArray();
        var header = Header(
            eolLocation: log.LongLength,
            fileSize: log.LongLength,
            totalEntries: (ulong)writes.Count,
            uniqueId, previousUniqueId, vhd2DataWriteGuid, time);
        header.CopyTo(log, 0);
        return log;
    }

    private static byte[] Block(long previousMetadataLocation, IReadOnlyList<byte[]> entries)
    {
        var block = new byte[MetadataSize];
        MetadataHeader(previousMetadataLocation, (uint)entries.Count).CopyTo(block, 0);
        for (var i = 0; i < entries.Count; i++) entries[i].CopyTo(block, MetadataHeaderSize + i * EntrySize);
        return block;
    }

    public static byte[] Header(
        long eolLocation, long fileSize, ulong totalEntries,
        Guid uniqueId, Guid previousUniqueId, Guid vhd2DataWriteGuid, uint timeStamp)
    {
        var h = new byte[HeaderSize];
        Encoding.ASCII.GetBytes("msctlog").CopyTo(h, 0); // + one 0x00 pad byte
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(8), FormatVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(12), timeStamp);
        Encoding.ASCII.GetBytes("ct").CopyTo(h, 16); // CreatorApplication, left-justified
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(20), 1); // CreatorVersion
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(24), fileSize); // OriginalSize
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(32), fileSize); // CurrentSize
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(44), eolLocation);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(52), 0); // ErrorCode
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(56), MetadataSize);
        uniqueId.ToByteArray().CopyTo(h, 60); // Guid.ToByteArray is the Windows layout
        previousUniqueId.ToByteArray().CopyTo(h, 76);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(92), timeStamp); // LastModifiedTimeStamp
        BinaryPrimitives.WriteUInt64LittleEndian(h.AsSpan(96), totalEntries);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(104), 0); // FileType: HRL
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(108), 0); // Flags
        vhd2DataWriteGuid.ToByteArray().CopyTo(h, 110);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(40), Checksum(h));
        return h;
    }
}
