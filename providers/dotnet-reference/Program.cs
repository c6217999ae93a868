using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Hvr.ReferenceProvider;

// A small Hyper-V Replica provider written from docs/provider-contract.md, docs/api.md, docs/local-host.md and
// docs/schemas alone: it registers a site, protects one VM with two disks, ships initial replication and delta
// cycles as MS-HRL logs through upload grants, and checks that every replica equals its source.

Options options;
try
{
    options = Options.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine($"hvr-reference-provider: {e.Message}");
    return 2;
}
if (options.Command == "self-test")
{
    return SelfTest.Run(Console.WriteLine) ? 0 : 1;
}
if (options.Command != "run")
{
    Console.Error.WriteLine(Options.Usage);
    return 2;
}
try
{
    using var cts = new CancellationTokenSource(options.Timeout);
    await new Scenario(options, line => Console.WriteLine($"[{DateTime.UtcNow:HH:mm:ss.fff}] {line}")).RunAsync(cts.Token);
    return 0;
}
catch (Exception e) when (e is InvalidOperationException or TimeoutException or OperationCanceledException
                           or Azure.RequestFailedException or Azure.Messaging.ServiceBus.ServiceBusException)
{
    Console.Error.WriteLine($"hvr-reference-provider: {e.GetType().Name}: {e.Message}");
    return 1;
}

sealed class Options
{
    public const string Usage =
        "usage: hvr-reference-provider run --api URL --key FUNCTION_KEY --bus PROVIDER_BUS --storage CONNECTION_STRING\n" +
        "                                  [--out DIR] [--cycles 3] [--cycle-seconds N] [--timeout-seconds 600]\n" +
        "       hvr-reference-provider self-test\n" +
        "Each option falls back to HVR_API_URL, HVR_FUNCTION_KEY, PROVIDER_BUS, AZURE_STORAGE_CONNECTION_STRING.";

    public string Command = "";
    public string Api = Environment.GetEnvironmentVariable("HVR_API_URL") ?? "";
    public string Key = Environment.GetEnvironmentVariable("HVR_FUNCTION_KEY") ?? "";
    public string Bus = Environment.GetEnvironmentVariable("PROVIDER_BUS") ?? "";
    public string Storage = Environment.GetEnvironmentVariable("AZURE_STORAGE_CONNECTION_STRING") ?? "";
    public string? Out;
    public int Cycles = 3;
    /// <summary>Seconds between delta cycles; default: the policy's copy frequency from StartReplication.</summary>
    public int? CycleSeconds;
    public TimeSpan Timeout = TimeSpan.FromMinutes(10);

    public static Options Parse(string[] args)
    {
        var o = new Options { Command = args.Length > 0 ? args[0] : "" };
        for (var i = 1; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--api": o.Api = Next(); break;
                case "--key": o.Key = Next(); break;
                case "--bus": o.Bus = Next(); break;
                case "--storage": o.Storage = Next(); break;
                case "--out": o.Out = Next(); break;
                case "--cycles": o.Cycles = int.Parse(Next()); break;
                case "--cycle-seconds": o.CycleSeconds = int.Parse(Next()); break;
                case "--timeout-seconds": o.Timeout = TimeSpan.FromSeconds(int.Parse(Next())); break;
                default: throw new ArgumentException($"unknown option {args[i]}\n{Usage}");
            }
        }
        if (o.Command == "run")
        {
            foreach (var (name, value) in new[] { ("--api", o.Api), ("--key", o.Key), ("--bus", o.Bus), ("--storage", o.Storage) })
                if (string.IsNullOrEmpty(value)) throw new ArgumentException($"{name} is required (or its variable)\n{Usage}");
        }
        return o;
    }
}

sealed class Scenario(Options options, Action<string> log)
{
    private static readonly TimeSpan EventWait = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan StateWait = TimeSpan.FromSeconds(240);
    private readonly string run = Guid.NewGuid().ToString("N")[..6];
    private readonly Random random = new(20250115);

    public async Task RunAsync(CancellationToken ct)
    {
        var siteId = $"ref-site-{run}";
        var vmId = $"ref-vm-{run}";
        const string policyName = "ref-30s";
        var disks = new List<SourceDisk> { new("os", 8 * 1024 * 1024, isOsDisk: true), new("data1", 4 * 1024 * 1024, isOsDisk: false) };
        foreach (var d in disks) Fill(d);

        using var api = new ManagementApi(options.Api, options.Key);

        // 1. The site: its 201 answer carries the key the provider signs with (shown once).
        var site = await api.ExpectAsync(HttpMethod.Post, "/sites",
            new JsonObject { ["siteId"] = siteId, ["name"] = "Reference provider site", ["kind"] = "HyperVSite", ["timeZone"] = "UTC" },
            ct, 201);
        var siteKey = site?["siteKey"] ?? throw new InvalidOperationException($"POST /sites returned no siteKey: {site?.ToJsonString()}");
        var keyId = (string)siteKey["keyId"]!;
        var key = Convert.FromBase64String((string)siteKey["key"]!);
        log($"site {siteId} registered, key {keyId}");

        await using var channel = new Channel(options.Bus, siteId, keyId, key, log);
        await channel.StartReceivingAsync(TimeSpan.FromSeconds(30), ct);

        await channel.SendAsync(new JsonObject
        {
            ["type"] = "Register", ["version"] = 1, ["providerId"] = $"ref-provider-{run}", ["kind"] = "HyperVHost",
            ["hostName"] = Environment.MachineName, ["providerVersion"] = "1.0.0",
        }, Contract.SiteSession(siteId), ct);

        // 2. A policy and protection of the VM.
        await api.ExpectAsync(HttpMethod.Put, $"/replicationPolicies/{policyName}",
            new JsonObject
            {
                ["copyFrequencySeconds"] = 30, ["recoveryPointRetentionHours"] = 2,
                ["appConsistentSnapshotFrequencyHours"] = 0, ["initialReplicationStart"] = "Immediately",
            }, ct, 200, 201);
        var diskArray = new JsonArray();
        foreach (var d in disks)
            diskArray.Add(new JsonObject { ["diskId"] = d.DiskId, ["sizeBytes"] = d.Data.LongLength, ["logicalSectorBytes"] = 512, ["isOsDisk"] = d.IsOsDisk });
        var job = await api.ExpectAsync(HttpMethod.Put, $"/replicationProtectedItems/{vmId}",
            new JsonObject
            {
                ["siteId"] = siteId, ["policyName"] = policyName,
                ["vm"] = new JsonObject { ["name"] = "ref-web01", ["generation"] = 2, ["disks"] = diskArray },
            }, ct, 202);
        log($"enable protection: job {job?["jobId"]}");

        var start = await channel.WaitForEventAsync("StartReplication",
            e => (string?)e["type"] == "StartReplication" && (string?)e["vmId"] == vmId, EventWait, ct);
        var copyFrequency = (int)start["copyFrequencySeconds"]!;
        foreach (var d in start["disks"]!.AsArray())
        {
            var disk = disks.Single(x => x.DiskId == (string)d!["diskId"]!);
            if ((long)d!["sizeBytes"]! != disk.Data.LongLength)
                throw new InvalidOperationException($"StartReplication says disk {disk.DiskId} has {d["sizeBytes"]} bytes; it has {disk.Data.Length}.");
        }

        // 3. Initial replication: tracking is on before the copy; each disk in two logs, the guest writing between
        // them; the last log of every disk carries cycleid=initial and brings it to one consistent point.
        foreach (var d in disks) d.MarkForCopy(0, d.Data.Length / 2);
        var round1 = disks.ToDictionary(d => d.DiskId, d => d.TakeChanges());
        foreach (var d in disks) d.MarkForCopy(d.Data.Length / 2, d.Data.Length - d.Data.Length / 2);
        await ShipAsync(channel, vmId, disks, round1, cycle: null, ct);
        await channel.SendAsync(Progress(vmId, disks, 50), vmId, ct);
        foreach (var d in disks) GuestWrites(d, 6);
        var initialAt = DateTime.UtcNow;
        await ShipAsync(channel, vmId, disks, disks.ToDictionary(d => d.DiskId, d => d.TakeChanges()),
            new Cycle("initial", "CrashConsistent", initialAt), ct);
        await channel.SendAsync(Progress(vmId, disks, 100), vmId, ct);

        await WaitForAsync(api, $"VM {vmId} Protected", async () =>
        {
            var item = await api.ExpectAsync(HttpMethod.Get, $"/replicationProtectedItems/{vmId}", null, ct, 200);
            var p = item?["properties"];
            return ((string?)p?["protectionState"] == "Protected", $"{p?["protectionState"]}, health {p?["replicationHealth"]} {p?["healthReasons"]?.ToJsonString()}");
        }, vmId, channel, ct);
        log($"VM {vmId} is Protected");
        var pending = new JsonObject();
        foreach (var d in disks) pending[d.DiskId] = 0;
        await channel.SendAsync(new JsonObject
        {
            ["type"] = "Heartbeat", ["version"] = 1, ["providerId"] = $"ref-provider-{run}",
            ["vms"] = new JsonArray(new JsonObject { ["vmId"] = vmId, ["pendingLogBytes"] = pending }),
        }, Contract.SiteSession(siteId), ct);

        // 4. Delta cycles: one log per disk per cycle (an empty one for a disk the guest did not write), then CycleCompleted.
        var interval = TimeSpan.FromSeconds(options.CycleSeconds ?? copyFrequency);
        for (var n = 1; n <= options.Cycles; n++)
        {
            await Task.Delay(interval, ct);
            foreach (var d in disks)
                if (!(n == 2 && !d.IsOsDisk)) GuestWrites(d, 4 + n);
            var cycle = new Cycle($"cycle-{n}", n == options.Cycles ? "AppConsistent" : "CrashConsistent", DateTime.UtcNow);
            var logs = await ShipAsync(channel, vmId, disks, disks.ToDictionary(d => d.DiskId, d => d.TakeChanges()), cycle, ct);
            await channel.SendAsync(new JsonObject
            {
                ["type"] = "CycleCompleted", ["version"] = 1, ["vmId"] = vmId, ["cycleId"] = cycle.Id,
                ["consistency"] = cycle.Consistency, ["capturedAt"] = Contract.Instant(cycle.CapturedAt), ["logs"] = logs,
            }, vmId, ct);
            await WaitForAsync(api, $"recovery point {cycle.Id}", async () =>
            {
                var points = await api.ExpectAsync(HttpMethod.Get, $"/replicationProtectedItems/{vmId}/recoveryPoints", null, ct, 200);
                var ids = points?["value"]?.AsArray().Select(p => (string?)p?["properties"]?["cycleId"]).ToList() ?? [];
                return (ids.Contains(cycle.Id), $"points: {string.Join(", ", ids)}");
            }, vmId, channel, ct);
            log($"recovery point {cycle.Id} recorded");
        }

        // 5. Every replica equals its source as it was at the last cycle's barrier (the guest wrote nothing since).
        await CheckReplicasAsync(vmId, disks, ct);
        var dead = await channel.DeadLettersAsync(ct);
        if (dead.Count > 0) throw new InvalidOperationException($"commands were dead-lettered: {string.Join("; ", dead)}");
        Console.WriteLine($"REFERENCE PROVIDER OK: site {siteId}, VM {vmId}, {disks.Count} disks, initial + {options.Cycles} cycles, replicas equal their sources");
    }

    private sealed record Cycle(string Id, string Consistency, DateTime CapturedAt);

    private static JsonObject Progress(string vmId, List<SourceDisk> disks, int percent)
    {
        var map = new JsonObject();
        foreach (var d in disks) map[d.DiskId] = percent;
        return new JsonObject { ["type"] = "InitialReplicationProgress", ["version"] = 1, ["vmId"] = vmId, ["disks"] = map };
    }

    /// <summary>
    /// One log per disk: numbered next in its chain, chained to the previous log, asked a grant for, uploaded with the
    /// cycle's metadata. Returns the <c>logs</c> of a CycleCompleted.
    /// </summary>
    private async Task<JsonArray> ShipAsync(Channel channel, string vmId, List<SourceDisk> disks,
        Dictionary<string, List<HrlWrite>> changes, Cycle? cycle, CancellationToken ct)
    {
        var planned = disks.Select(d =>
        {
            var uniqueId = Guid.NewGuid();
            var bytes = HrlWriter.Write(changes[d.DiskId], uniqueId, d.LastUniqueId, d.Vhd2DataWriteGuid, DateTime.UtcNow);
            return (Disk: d, Sequence: d.LastSequence + 1, UniqueId: uniqueId, Bytes: bytes);
        }).ToList();
        var requestId = $"req-{run}-{Guid.NewGuid().ToString("N")[..8]}";
        var uploads = new JsonArray();
        foreach (var p in planned)
            uploads.Add(new JsonObject { ["diskId"] = p.Disk.DiskId, ["sequence"] = p.Sequence, ["logId"] = p.UniqueId.ToString() });
        await channel.SendAsync(new JsonObject
        {
            ["type"] = "UploadGrantRequest", ["version"] = 1, ["vmId"] = vmId, ["requestId"] = requestId, ["uploads"] = uploads,
        }, vmId, ct);
        var grant = await channel.WaitForEventAsync($"UploadGrant {requestId}",
            e => (string?)e["type"] == "UploadGrant" && (string?)e["requestId"] == requestId, EventWait, ct);

        var logs = new JsonArray();
        foreach (var p in planned)
        {
            var g = grant["grants"]!.AsArray().Single(x => (string?)x!["diskId"] == p.Disk.DiskId && (long)x!["sequence"]! == p.Sequence);
            var metadata = new Dictionary<string, string> { ["resync"] = "false" };
            if (cycle is not null)
            {
                metadata["cycleid"] = cycle.Id;
                metadata["consistency"] = cycle.Consistency;
                metadata["capturedat"] = Contract.Instant(cycle.CapturedAt);
            }
            var blob = new BlobClient(new Uri((string)g!["url"]!), new BlobClientOptions
            {
                Retry = { MaxRetries = 3, NetworkTimeout = TimeSpan.FromSeconds(30) },
            });
            await blob.UploadAsync(new BinaryData(p.Bytes), new BlobUploadOptions { Metadata = metadata }, ct);
            p.Disk.LastSequence = p.Sequence;
            p.Disk.LastUniqueId = p.UniqueId;
            log($"uploaded {g["blobPath"]} ({p.Bytes.Length} bytes{(cycle is null ? "" : $", cycle {cycle.Id}")})");
            logs.Add(new JsonObject { ["diskId"] = p.Disk.DiskId, ["sequence"] = p.Sequence, ["logId"] = p.UniqueId.ToString(), ["bytes"] = p.Bytes.LongLength });
        }
        return logs;
    }

    private void Fill(SourceDisk disk)
    {
        // Something in every MiB but not everything: a boot sector, scattered data, long zero runs.
        random.NextBytes(disk.Data.AsSpan(0, 4096));
        for (long mib = 0; mib < disk.Data.Length / (1024 * 1024); mib++)
            random.NextBytes(disk.Data.AsSpan((int)(mib * 1024 * 1024 + 65536), 8192));
    }

    private void GuestWrites(SourceDisk disk, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var sectors = random.Next(1, 24);
            var offset = (long)random.Next(0, disk.Data.Length / SourceDisk.Sector - sectors) * SourceDisk.Sector;
            var bytes = new byte[sectors * SourceDisk.Sector];
            random.NextBytes(bytes);
            disk.Write(offset, bytes);
        }
    }

    private async Task WaitForAsync(ManagementApi api, string what, Func<Task<(bool Done, string State)>> check,
        string vmId, Channel channel, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + StateWait;
        var state = "";
        while (DateTime.UtcNow < deadline)
        {
            bool done;
            (done, state) = await check();
            if (done) return;
            await Task.Delay(500, ct);
        }
        var dead = await channel.DeadLettersAsync(ct);
        var jobs = await api.SendAsync(HttpMethod.Get, $"/replicationJobs?vmId={vmId}", null, ct);
        throw new TimeoutException($"{what}: not reached within {StateWait.TotalSeconds} s; last state: {state}; dead-lettered commands: " +
            $"{(dead.Count == 0 ? "none" : string.Join("; ", dead))}; jobs: {jobs.Body?.ToJsonString()}");
    }

    private async Task CheckReplicasAsync(string vmId, List<SourceDisk> disks, CancellationToken ct)
    {
        var service = new BlobServiceClient(options.Storage, new BlobClientOptions { Retry = { MaxRetries = 3, NetworkTimeout = TimeSpan.FromSeconds(60) } });
        var replicas = service.GetBlobContainerClient("replicas");
        foreach (var d in disks)
        {
            var name = $"{vmId}/{d.DiskId}.vhd";
            var content = (await replicas.GetBlobClient(name).DownloadContentAsync(ct)).Value.Content.ToArray();
            var virtualSize = RoundUpToMiB(d.Data.LongLength);
            if (content.LongLength != virtualSize + 512)
                throw new InvalidOperationException($"replica {name} is {content.Length} bytes; a fixed VHD of {d.Data.Length} bytes is {virtualSize + 512}.");
            if (!content.AsSpan(0, d.Data.Length).SequenceEqual(d.Data))
                throw new InvalidOperationException($"replica {name} differs from its source at byte {FirstDifference(content, d.Data)}.");
            CheckFooter(name, content.AsSpan((int)virtualSize, 512), virtualSize);
            log($"replica {name} equals its source ({d.Data.Length} bytes) and has a valid fixed-VHD footer");
            if (options.Out is not null) QemuCompare(vmId, d, content);
        }
    }

    private static long RoundUpToMiB(long n) => (n + 1024 * 1024 - 1) / (1024 * 1024) * (1024 * 1024);

    private static long FirstDifference(byte[] a, byte[] b)
    {
        for (var i = 0; i < b.Length; i++) if (a[i] != b[i]) return i;
        return -1;
    }

    /// <summary>The VHD footer: cookie "conectix", current size at 48 (big-endian), disk type 2 (fixed) at 60, checksum at 64.</summary>
    private static void CheckFooter(string name, ReadOnlySpan<byte> footer, long virtualSize)
    {
        if (Encoding.ASCII.GetString(footer[..8]) != "conectix") throw new InvalidOperationException($"replica {name}: no VHD footer cookie.");
        var size = BinaryPrimitives.ReadInt64BigEndian(footer[48..]);
        var type = BinaryPrimitives.ReadUInt32BigEndian(footer[60..]);
        if (size != virtualSize || type != 2)
            throw new InvalidOperationException($"replica {name}: footer says size {size}, type {type}; expected {virtualSize}, 2 (fixed).");
        uint sum = 0;
        for (var i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += footer[i];
        if (~sum != BinaryPrimitives.ReadUInt32BigEndian(footer[64..])) throw new InvalidOperationException($"replica {name}: footer checksum.");
    }

    private void QemuCompare(string vmId, SourceDisk d, byte[] replica)
    {
        var dir = Path.Combine(options.Out!, vmId);
        Directory.CreateDirectory(dir);
        var raw = Path.Combine(dir, $"{d.DiskId}.raw");
        var vhd = Path.Combine(dir, $"{d.DiskId}.vhd");
        File.WriteAllBytes(raw, d.Data);
        File.WriteAllBytes(vhd, replica);
        var qemu = new[] { "/usr/bin/qemu-img", "/usr/local/bin/qemu-img" }.FirstOrDefault(File.Exists);
        if (qemu is null)
        {
            log("qemu-img not found: replica compared byte for byte only");
            return;
        }
        using var p = Process.Start(new ProcessStartInfo(qemu, ["compare", "-f", "raw", "-F", "vpc", raw, vhd]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        if (!p.WaitForExit(60_000)) { p.Kill(); throw new TimeoutException("qemu-img compare did not finish within 60 s."); }
        var said = (p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd()).Trim();
        if (p.ExitCode != 0) throw new InvalidOperationException($"qemu-img compare {raw} {vhd}: {said}");
        log($"qemu-img compare -f raw -F vpc: {said}");
    }
}
