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
const NotYetInitialized = 94;
const AlreadyInitialized = 23;

// run returns a command's reply, ok or not: mongosh throws a MongoServerError
// (with the server's code) for a command that fails.
function run(db, command) {
  try {
    return db.runCommand(command);
  } catch (e) {
    if (typeof e.code !== "number") {
      throw e;
    }
    return { ok: 0, code: e.code, errmsg: e.message };
  }
}

// Every member must be up before the set can be initiated with it (ping needs
// no authentication).
// About ten minutes per member, then the container fails and the Job retries.
for (const host of hosts) {
  for (let attempt = 1; ; attempt++) {
    let last;
    try {
      const conn = new Mongo(`mongodb://${host}/?directConnection=true&serverSelectionTimeoutMS=2000`);
      last = run(conn.getDB("admin"), { ping: 1 });
      if (last.ok === 1) {
        break;
      }
    } catch (e) {
      last = e;
    }
    if (attempt >= 150) {
      throw new Error(`${host} does not answer: ${last instanceof Error ? last : JSON.stringify(last)}`);
    }
    sleep(2000);
  }
}

const admin = new Mongo(
  `mongodb://root:${encodeURIComponent(password)}@${hosts[0]}/?authSource=admin&directConnection=true`,
).getDB("admin");
const status = run(admin, { replSetGetStatus: 1 });
if (status.ok === 1) {
  print(`replica set ${status.set} is already initiated`);
  quit(0);
}
if (status.code !== NotYetInitialized) {
  throw new Error(`replSetGetStatus: ${JSON.stringify(status)}`);
}
const members = hosts.map((host, i) => ({ _id: i, host: host }));
const result = run(admin, { replSetInitiate: { _id: name, members: members } });
if (result.ok !== 1 && result.code !== AlreadyInitialized) {
  throw new Error(`replSetInitiate: ${JSON.stringify(result)}`);
}
print(`replica set ${name} initiated with ${hosts.join(", ")}`);
