using System.Reflection;
using System.Reflection.Emit;
using Microsoft.Azure.WebJobs;
using Microsoft.Azure.WebJobs.Extensions.DurableTask;
using Newtonsoft.Json.Linq;

namespace Hvr.Dtfx;

/// <summary>
/// Builds, at start-up, one class whose methods are the app's durable functions: an
/// <c>[FunctionName(name)] [OrchestrationTrigger] string</c> method per orchestrator and an
/// <c>[FunctionName(name)] [ActivityTrigger] JToken</c> method per activity, each forwarding to the bridge.
/// The names come from the Node process (its captured registrations), so nothing is generated on disk and a
/// renamed or added function needs no rebuild of this host.
/// </summary>
public static class FunctionEmitter
{
    public const string ClientFunctionName = "HvrDurableClient";

    public static Type Emit(IReadOnlyList<string> orchestrators, IReadOnlyList<string> activities)
    {
        var assembly = AssemblyBuilder.DefineDynamicAssembly(new AssemblyName("HvrDurableFunctions"), AssemblyBuilderAccess.Run);
        var module = assembly.DefineDynamicModule("HvrDurableFunctions");
        var type = module.DefineType("HvrDurableFunctions.Functions", TypeAttributes.Public | TypeAttributes.Class | TypeAttributes.Sealed | TypeAttributes.Abstract);

        var orchestrate = typeof(Dispatch).GetMethod(nameof(Dispatch.Orchestrate))!;
        var runActivity = typeof(Dispatch).GetMethod(nameof(Dispatch.RunActivity))!;
        var captureClient = typeof(Dispatch).GetMethod(nameof(Dispatch.CaptureClient))!;
        var used = new HashSet<string>(StringComparer.OrdinalIgnoreCase);

        foreach (var name in orchestrators)
        {
            DefineForwarder(type, UniqueMethodName(name, used), name, typeof(Task<string>), typeof(string),
                new CustomAttributeBuilder(typeof(OrchestrationTriggerAttribute).GetConstructor(Type.EmptyTypes)!, []), orchestrate);
        }
        foreach (var name in activities)
        {
            DefineForwarder(type, UniqueMethodName(name, used), name, typeof(Task<JToken>), typeof(JToken),
                new CustomAttributeBuilder(typeof(ActivityTriggerAttribute).GetConstructor(Type.EmptyTypes)!, []), runActivity);
        }

        // A function called once at start-up whose only job is to receive the client JSON the extension hands
        // out to `[DurableClient] string` parameters (the payload the Node worker would get).
        var client = type.DefineMethod(UniqueMethodName(ClientFunctionName, used), MethodAttributes.Public | MethodAttributes.Static,
            typeof(void), [typeof(string)]);
        client.SetCustomAttribute(FunctionNameAttribute(ClientFunctionName));
        client.SetCustomAttribute(new CustomAttributeBuilder(typeof(NoAutomaticTriggerAttribute).GetConstructor(Type.EmptyTypes)!, []));
        var clientParameter = client.DefineParameter(1, ParameterAttributes.None, "client");
        clientParameter.SetCustomAttribute(new CustomAttributeBuilder(typeof(DurableClientAttribute).GetConstructor(Type.EmptyTypes)!, []));
        var il = client.GetILGenerator();
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Call, captureClient);
        il.Emit(OpCodes.Ret);

        return type.CreateType();
    }

    private static void DefineForwarder(TypeBuilder type, string methodName, string functionName, Type returnType,
        Type triggerType, CustomAttributeBuilder trigger, MethodInfo target)
    {
        var method = type.DefineMethod(methodName, MethodAttributes.Public | MethodAttributes.Static, returnType, [triggerType]);
        method.SetCustomAttribute(FunctionNameAttribute(functionName));
        var parameter = method.DefineParameter(1, ParameterAttributes.None, "payload");
        parameter.SetCustomAttribute(trigger);
        var il = method.GetILGenerator();
        il.Emit(OpCodes.Ldstr, functionName);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Call, target);
        il.Emit(OpCodes.Ret);
    }

    private static CustomAttributeBuilder FunctionNameAttribute(string name) =>
        new(typeof(FunctionNameAttribute).GetConstructor([typeof(string)])!, [name]);

    /// <summary>A valid, unique CLR method name for a function name (function names allow '-').</summary>
    private static string UniqueMethodName(string functionName, HashSet<string> used)
    {
        var chars = functionName.Select(c => char.IsLetterOrDigit(c) || c == '_' ? c : '_').ToArray();
        var baseName = "F_" + new string(chars);
        var name = baseName;
        for (var i = 2; !used.Add(name); i++) name = baseName + "_" + i;
        return name;
    }
}
