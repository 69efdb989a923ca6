// Initiates one database's replica set, once: the Job mongo-replica-sets runs
// it in one container per database (mongosh --nodb). It waits until every
// member in MONGO_HOSTS answers, then, as the root user on the first member,
// initiates MONGO_REPLICA_SET with those members unless it already is.
// Running it again changes nothing, so the Job may be re-created at will.
const hosts = (process.env.MONGO_HOSTS || "").split(",").filter((h) => h !== "");
const name = process.env.MONGO_REPLICA_SET;
const password = process.env.MONGO_ROOT_PASSWORD;
if (hosts.length === 0 || !name || !password) {
  throw new Error("MONGO_HOSTS, MONGO_REPLICA_SET and MONGO_ROOT_PASSWORD must be set");
}

// Every member must be up before the set can be initiated with it (ping needs
// no authentication).
for (const host of hosts) {
  for (let attempt = 1; ; attempt++) {
    try {
      new Mongo(`mongodb://${host}/?directConnection=true`).getDB("admin").runCommand({ ping: 1 });
      break;
    } catch (e) {
      if (attempt >= 150) {
        throw new Error(`${host} does not answer: ${e}`);
      }
      sleep(2000);
    }
  }
}

const admin = new Mongo(
  `mongodb://root:${encodeURIComponent(password)}@${hosts[0]}/?authSource=admin&directConnection=true`,
).getDB("admin");
const status = admin.runCommand({ replSetGetStatus: 1 });
if (status.ok === 1) {
  print(`replica set ${status.set} is already initiated`);
  quit(0);
}
if (status.code !== 94) { // NotYetInitialized
  throw new Error(`replSetGetStatus: ${JSON.stringify(status)}`);
}
const members = hosts.map((host, i) => ({ _id: i, host: host }));
const result = admin.runCommand({ replSetInitiate: { _id: name, members: members } });
if (result.ok !== 1) {
  throw new Error(`replSetInitiate: ${JSON.stringify(result)}`);
}
print(`replica set ${name} initiated with ${hosts.join(", ")}`);
