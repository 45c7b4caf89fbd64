// Stands in for @grpc/proto-loader in the bundled gRPC library (scripts/bundle.js). grpc-js loads
// proto-loader only to serve channelz or ORCA, which the agent never registers; if that ever
// changes, the call fails here, by name, instead of shipping protobufjs for nothing.
'use strict';
function loadSync() {
  throw new Error('@grpc/proto-loader is not in the nri-memshare bundle (scripts/bundle.js): channelz and ORCA are not served');
}
module.exports = { loadSync };
