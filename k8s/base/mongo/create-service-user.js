// Creates the service's own MongoDB user. The mongo image runs this once, on
// the first start of an empty volume (/docker-entrypoint-initdb.d), with
// mongosh authenticated as the root user and `db` set to
// MONGO_INITDB_DATABASE, the service's database. The user may read and write
// that database and nothing else; the service connects as it (MONGO_URI of
// its Deployment). A script that fails stops the container before mongod
// serves: fix the cause and delete the volume's claim to start over.
const user = process.env.MONGO_INITDB_SERVICE_USER;
const pwd = process.env.MONGO_INITDB_SERVICE_PASSWORD;
if (!user || !pwd) {
  throw new Error("MONGO_INITDB_SERVICE_USER and MONGO_INITDB_SERVICE_PASSWORD must be set");
}
db.createUser({ user: user, pwd: pwd, roles: [{ role: "readWrite", db: db.getName() }] });
