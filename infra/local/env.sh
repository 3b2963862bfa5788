# Shared settings of the local stack, sourced by infra/local/stack and ./dev.
# Every value can be overridden from the environment before calling them.
# shellcheck shell=bash

CHATSDK_ROOT=${CHATSDK_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# Downloads, jars, built tools and the cargo target dir live outside the clone so a fresh clone is fast.
CHATSDK_CACHE_DIR=${CHATSDK_CACHE_DIR:-$HOME/.cache/chatsdk}
# Data and logs of the running stack live inside the clone; `stack down --purge` removes them.
CHATSDK_STATE_DIR=${CHATSDK_STATE_DIR:-$CHATSDK_ROOT/.state}
CHATSDK_LOG_DIR=${CHATSDK_LOG_DIR:-$CHATSDK_STATE_DIR/logs}

KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
# 3.0.x is the newest line that runs on Java 17 (Debian's JDK); 3.1+ needs Java 21.
APICURIO_VERSION=${APICURIO_VERSION:-3.0.9}
GARAGE_VERSION=${GARAGE_VERSION:-2.5.0}
# The pooler of the production deployment (infra/k8s): the tests run sqlx through it in transaction mode.
PGBOUNCER_VERSION=${PGBOUNCER_VERSION:-1.24.1}

# Ports: all on 127.0.0.1, away from the usual defaults so a system service does not collide.
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
# A second broker listener for outage tests: it advertises the proxy port, so a client bootstrapped through
# a test's fault proxy (testkit::fault) reaches the broker only through that proxy, which can cut it off.
KAFKA_FAULT_PORT=${KAFKA_FAULT_PORT:-19094}
KAFKA_FAULT_PROXY_PORT=${KAFKA_FAULT_PROXY_PORT:-19095}
REGISTRY_PORT=${REGISTRY_PORT:-18081}
POSTGRES_PORT=${POSTGRES_PORT:-15432}
S3_PORT=${S3_PORT:-13900}
GARAGE_RPC_PORT=${GARAGE_RPC_PORT:-13901}
GARAGE_ADMIN_PORT=${GARAGE_ADMIN_PORT:-13903}
COMMAND_API_PORT=${COMMAND_API_PORT:-18180}
QUERY_API_PORT=${QUERY_API_PORT:-18190}
PROJECTOR_PORT=${PROJECTOR_PORT:-18170}

# Partition count of the channel topics. Fixed for a topic's life (DESIGN.md).
CHATSDK_PARTITIONS=${CHATSDK_PARTITIONS:-12}

# Local-only credentials. They protect nothing: every server binds to 127.0.0.1 and its data is throwaway.
POSTGRES_SUPERUSER_PASSWORD=${POSTGRES_SUPERUSER_PASSWORD:-postgres-local}
POSTGRES_USER=${POSTGRES_USER:-chatsdk}
POSTGRES_PASSWORD=${POSTGRES_PASSWORD:-chatsdk-local}
POSTGRES_DB=${POSTGRES_DB:-chatsdk}
S3_BUCKET=${S3_BUCKET:-chatsdk-local}
# Guards the command API's POST /v1/admin/apps on the local services `./dev up` starts.
CHATSDK_LOCAL_ADMIN_TOKEN=${CHATSDK_LOCAL_ADMIN_TOKEN:-local-admin-token}
S3_REGION=${S3_REGION:-us-east-1}
# garage key ids are "GK" + 24 hex digits and secrets 64 hex digits.
S3_ACCESS_KEY_ID=${S3_ACCESS_KEY_ID:-GK0c4a75d0c1e2f3a4b5c6d7e8}
S3_SECRET_ACCESS_KEY=${S3_SECRET_ACCESS_KEY:-6c6f63616c2d6f6e6c792d736563726574000000000000000000000000000001}

# What the services and tests read (see docs/configuration.md): CHATSDK_<SECTION>__<KEY>.
chatsdk_client_env() {
  cat <<EOF
export CHATSDK_KAFKA__BROKERS=127.0.0.1:$KAFKA_PORT
export CHATSDK_REGISTRY__URL=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
export CHATSDK_POSTGRES__URL=postgres://$POSTGRES_USER:$POSTGRES_PASSWORD@127.0.0.1:$POSTGRES_PORT/$POSTGRES_DB
export CHATSDK_S3__ENDPOINT=http://127.0.0.1:$S3_PORT
export CHATSDK_S3__REGION=$S3_REGION
export CHATSDK_S3__BUCKET=$S3_BUCKET
export CHATSDK_S3__ACCESS_KEY_ID=$S3_ACCESS_KEY_ID
export CHATSDK_S3__SECRET_ACCESS_KEY=$S3_SECRET_ACCESS_KEY
export CHATSDK_KAFKA__PARTITIONS=$CHATSDK_PARTITIONS
export CHATSDK_KAFKA_FAULT__LISTENER=127.0.0.1:$KAFKA_FAULT_PORT
export CHATSDK_KAFKA_FAULT__PROXY=127.0.0.1:$KAFKA_FAULT_PROXY_PORT
export CHATSDK_POSTGRES_TLS_CA=$CHATSDK_STATE_DIR/postgres-ca.crt
export CHATSDK_PGBOUNCER_BIN=$CHATSDK_CACHE_DIR/tools/pgbouncer-$PGBOUNCER_VERSION/bin/pgbouncer
EOF
}
