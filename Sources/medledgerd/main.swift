import Foundation

// The node daemon is being built (identity milestone): until it lands, say so instead of pretending.
FileHandle.standardError.write(Data("medledgerd: the node daemon is not available in this build yet\n".utf8))
exit(2)
