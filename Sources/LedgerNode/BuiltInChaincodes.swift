import LedgerChaincode
import MedRecords

/// The chaincodes every node runs. A channel enables those its configuration defines.
public enum BuiltInChaincodes {
    public static var all: [any Chaincode] { [KVChaincode(), MedRecordsChaincode()] }
}
