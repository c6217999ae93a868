namespace Hvr.ReferenceProvider;

/// <summary>
/// A virtual disk as the provider sees it: its bytes, and change tracking by 512-byte sector, as Hyper-V Replica
/// tracks writes. Taking a log ships the current content of every sector changed since the last log, so a log
/// brings the replica to the disk as it is at that moment (the cycle's barrier).
/// </summary>
public sealed class SourceDisk
{
    public const int Sector = 512;
    /// <summary>Largest entry in a log we write.</summary>
    public const int MaxEntryBytes = 4 * 1024 * 1024;

    private readonly SortedSet<long> dirty = new();

    public SourceDisk(string diskId, long sizeBytes, bool isOsDisk)
    {
        if (sizeBytes % (1024 * 1024) != 0) throw new ArgumentException("This provider's disks are whole MiB.");
        DiskId = diskId;
        Data = new byte[sizeBytes];
        IsOsDisk = isOsDisk;
    }

    public string DiskId { get; }
    public byte[] Data { get; }
    public bool IsOsDisk { get; }
    /// <summary>The same on every log of this disk's chain: a new one would mean the disk changed outside replication.</summary>
    public Guid Vhd2DataWriteGuid { get; } = Guid.NewGuid();
    /// <summary>The sequence of the last log uploaded (0 before the first) and that log's UniqueId.</summary>
    public long LastSequence { get; set; }
    public Guid LastUniqueId { get; set; } = Guid.Empty;

    /// <summary>A guest write: changes the bytes and marks their sectors changed.</summary>
    public void Write(long offset, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(Data.AsSpan(checked((int)offset)));
        for (var s = offset / Sector; s * Sector < offset + bytes.Length; s++) dirty.Add(s);
    }

    /// <summary>Marks a range as to be shipped whatever its content (the initial copy of that range).</summary>
    public void MarkForCopy(long offset, long length)
    {
        for (var s = offset / Sector; s * Sector < offset + length; s++) dirty.Add(s);
    }

    /// <summary>The writes of the next log: every marked sector's current content, in runs of at most 4 MiB; clears the marks.</summary>
    public List<HrlWrite> TakeChanges()
    {
        var writes = new List<HrlWrite>();
        long runStart = -1, runEnd = -1;
        void Flush()
        {
            if (runStart < 0) return;
            var bytes = (int)((runEnd - runStart) * Sector);
            writes.Add(new HrlWrite(runStart * Sector, Data.AsSpan((int)(runStart * Sector), bytes).ToArray()));
            runStart = -1;
        }
        foreach (var s in dirty)
        {
            if (runStart >= 0 && s == runEnd && (runEnd - runStart) * Sector < MaxEntryBytes)
            {
                runEnd++;
                continue;
            }
            Flush();
            runStart = s;
            runEnd = s + 1;
        }
        Flush();
        dirty.Clear();
        return writes;
    }
}
