using System.Buffers.Binary;
using System.Text.Json.Nodes;

namespace Hvr.ReferenceProvider;

/// <summary>The published test vectors: the signature of docs/provider-contract.md and the MS-HRL checksums of the spec's example.</summary>
public static class SelfTest
{
    public static bool Run(Action<string> log)
    {
        var ok = true;
        void Check(string what, object expected, object actual)
        {
            var pass = Equals(expected, actual);
            ok &= pass;
            log($"{(pass ? "ok  " : "FAIL")} {what}: expected {expected}, got {actual}");
        }

        var body = JsonNode.Parse("""{"version":1,"type":"X","cycleId":"c1"}""")!;
        Check("canonical JSON", """{"cycleId":"c1","type":"X","version":1}""", Contract.Canonical(body));
        var key = Enumerable.Repeat((byte)0x07, 32).ToArray();
        Check("signature", "LYyijv0g0JuUERfLevn6jR1BrS7MufGRrTgZia7Ykvg=",
            Contract.Sign(key, "site-paris", "k1", "2025-01-15T10:30:00.000Z", "m-1", "vm-1", body));

        Check("metadata header #2 checksum", 4294966991u, BinaryPrimitives.ReadUInt32LittleEndian(HrlWriter.MetadataHeader(324096, 58).AsSpan(12)));
        Check("metadata header #1 checksum", 4294967295u, BinaryPrimitives.ReadUInt32LittleEndian(HrlWriter.MetadataHeader(0, 0).AsSpan(12)));
        foreach (var (n, length, offset, time, sum) in new (int, uint, long, uint, uint)[]
                 {
                     (1, 4096, 3626348544, 539842381, 4294966608), (2, 4096, 8026886144, 539842381, 4294966558),
                     (37, 512, 3676929536, 539842382, 4294966664), (42, 31232, 3673764352, 539842382, 4294966413),
                     (51, 4096, 10188185600, 539842382, 4294966776),
                 })
            Check($"entry {n} checksum", sum, BinaryPrimitives.ReadUInt32LittleEndian(HrlWriter.Entry(offset, length, time, 0).AsSpan(8)));
        return ok;
    }
}
